import CoffreAPI
import CoffreModel
import Metadata
import NIOCore
import NodeClient
import Synchronization
import Telemetry

/// The shard transport with every put, get and delete counted by node and result, and timed:
/// reads, repair, rebalancing and the collector all go through it.
struct MeteredShardTransport: ShardTransport {
    let base: any ShardTransport
    let metrics: MetricsRegistry
    /// A node's id from its base URL (the URL itself when no member has it).
    let nodeName: @Sendable (String) -> String

    private func measured<T>(_ operation: String, _ url: String, _ work: () async throws(NodeClientError) -> T) async throws(NodeClientError) -> T {
        let start = ContinuousClock.now
        defer { metrics.timer(.shardRequestDuration, operation).record(ContinuousClock.now - start) }
        do {
            let value = try await work()
            metrics.counter(.shardRequests, nodeName(url), operation, "ok").increment()
            return value
        } catch {
            let result = error.code == .notFound ? "not_found" : "error"
            metrics.counter(.shardRequests, nodeName(url), operation, result).increment()
            throw error
        }
    }

    func put(base url: String, key: [UInt8], body: ByteBuffer, checksum: UInt32) async throws(NodeClientError) {
        try await measured("put", url) { () async throws(NodeClientError) in
            try await base.put(base: url, key: key, body: body, checksum: checksum)
        }
    }

    func get(base url: String, key: [UInt8], into buffer: inout ByteBuffer) async throws(NodeClientError) -> UInt32 {
        let start = ContinuousClock.now
        defer { metrics.timer(.shardRequestDuration, "get").record(ContinuousClock.now - start) }
        do {
            let checksum = try await base.get(base: url, key: key, into: &buffer)
            metrics.counter(.shardRequests, nodeName(url), "get", "ok").increment()
            return checksum
        } catch {
            metrics.counter(.shardRequests, nodeName(url), "get", error.code == .notFound ? "not_found" : "error").increment()
            throw error
        }
    }

    func delete(base url: String, key: [UInt8], ifCreatedAt: Int64?) async throws(NodeClientError) {
        try await measured("delete", url) { () async throws(NodeClientError) in
            try await base.delete(base: url, key: key, ifCreatedAt: ifCreatedAt)
        }
    }

    func list(base url: String, prefix: [UInt8], after: String?, limit: Int) async throws(NodeClientError) -> ShardPage {
        try await base.list(base: url, prefix: prefix, after: after, limit: limit)
    }

    func health(base url: String) async throws(NodeClientError) -> NodeHealth { try await base.health(base: url) }

    func scrub(base url: String, after: String?, limit: Int) async throws(NodeClientError) -> ScrubStep {
        try await base.scrub(base: url, after: after, limit: limit)
    }

    func setFault(base url: String, _ fault: NodeFault?) async throws(NodeClientError) { try await base.setFault(base: url, fault) }
}

/// The metadata store with every request timed by operation, and failures counted (a refused
/// comparison is an answer, not a failure).
struct MeteredMetadataStore: MetadataStore {
    let base: any MetadataStore
    let metrics: MetricsRegistry

    private func measured<T>(_ operation: String, _ work: () async throws(MetadataError) -> T) async throws(MetadataError) -> T {
        let start = ContinuousClock.now
        defer { metrics.timer(.metadataRequestDuration, operation).record(ContinuousClock.now - start) }
        do {
            return try await work()
        } catch {
            metrics.counter(.metadataErrors, operation).increment()
            throw error
        }
    }

    func get(_ key: String) async throws(MetadataError) -> MetadataEntry? {
        try await measured("get") { () async throws(MetadataError) in try await base.get(key) }
    }

    func list(prefix: String, after: String?, limit: Int) async throws(MetadataError) -> [MetadataEntry] {
        try await measured("list") { () async throws(MetadataError) in try await base.list(prefix: prefix, after: after, limit: limit) }
    }

    func commit(if conditions: [MetadataCondition], then mutations: [MetadataMutation]) async throws(MetadataError) -> Int64? {
        try await measured("commit") { () async throws(MetadataError) in try await base.commit(if: conditions, then: mutations) }
    }

    func grantLease(ttlSeconds: Int) async throws(MetadataError) -> LeaseID {
        try await measured("lease") { () async throws(MetadataError) in try await base.grantLease(ttlSeconds: ttlSeconds) }
    }

    func renewLease(_ lease: LeaseID) async throws(MetadataError) {
        try await measured("lease") { () async throws(MetadataError) in try await base.renewLease(lease) }
    }

    func revokeLease(_ lease: LeaseID) async throws(MetadataError) {
        try await measured("lease") { () async throws(MetadataError) in try await base.revokeLease(lease) }
    }

    func watch(prefix: String, fromRevision revision: Int64?) -> AsyncThrowingStream<MetadataEvent, any Error> {
        base.watch(prefix: prefix, fromRevision: revision)
    }

    func alarms() async throws(MetadataError) -> [String] {
        try await measured("alarms") { () async throws(MetadataError) in try await base.alarms() }
    }
}
