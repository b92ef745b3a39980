import AsyncHTTPClient
import CoffreModel
import Foundation
import NIOCore
public import NIOSSL
import Synchronization

/// The metadata store in a real etcd cluster (3.4+), through etcd's v3 JSON gateway.
///
/// Each call goes to the first endpoint that answers; an endpoint that fails at the
/// connection level is skipped for the next one, so a coordinator rides through the loss of
/// an etcd member. Everything is linearizable (etcd's default for these calls). Keys and
/// values travel base64-encoded; 64-bit numbers as strings (etcd's JSON mapping).
///
/// Departures from the gRPC API: lease renewal opens the keep-alive stream, reads one answer
/// and closes it, instead of keeping one stream per lease.
public final class EtcdMetadataStore: MetadataStore {
    public let endpoints: [String]
    private let client: HTTPClient
    private let timeout: TimeAmount

    /// - Parameters:
    ///   - endpoints: client URLs of etcd members, such as `http://127.0.0.1:2379`.
    ///   - timeout: per request; etcd answers in milliseconds or has lost its quorum.
    ///   - tls: for `https://` endpoints: the etcd CA to trust and the client certificate to
    ///     show (etcd runs with `--client-cert-auth`: only coordinators hold such a certificate).
    public init(endpoints: [String], timeout: Duration = .seconds(5), tls: TLSConfiguration? = nil) throws(MetadataError) {
        guard !endpoints.isEmpty, endpoints.allSatisfy({ $0.hasPrefix("http://") || $0.hasPrefix("https://") }) else {
            throw MetadataError(.invalidArgument, "etcd endpoints must be http(s) URLs, got \(endpoints)")
        }
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        if let tls {
            var configuration = Self.clientConfiguration
            configuration.tlsConfiguration = tls
            // One per process in practice (a coordinator opens one store); kept for the process's
            // life like the shared one (an HTTPClient must not be freed before it is shut down).
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            Self.retained.withLock { $0.append(client) }
            self.client = client
        } else {
            self.client = Self.sharedClient
        }
        self.timeout = .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
    }

    /// One connection pool for every store in the process (never shut down, like
    /// `HTTPClient.shared`), that gives up on a member that refuses connections at once
    /// rather than retrying it until the request's deadline: a dead member must cost a
    /// refused connect, not seconds, or a lease granted just before can expire before the
    /// transaction that uses it.
    static let sharedClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    /// The TLS clients made for stores, never freed.
    static let retained = Mutex<[HTTPClient]>([])

    static var clientConfiguration: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(1)
        return configuration
    }

    /// The endpoint that answered last: tried first, so that a dead member is tried only
    /// after the live ones have failed.
    private let preferred = Atomic<Int>(0)

    /// Endpoint indices starting with the preferred one.
    private var order: [Int] {
        let first = preferred.load(ordering: .relaxed) % endpoints.count
        return (0..<endpoints.count).map { (first + $0) % endpoints.count }
    }

    public func get(_ key: String) async throws(MetadataError) -> MetadataEntry? {
        try MetadataValidation.check(key: key)
        let response = try await call("/v3/kv/range", ["key": Self.b64(key)])
        return try (response["kvs"] as? [[String: Any]] ?? []).first.map(Self.entry)
    }

    public func list(prefix: String, after: String?, limit: Int) async throws(MetadataError) -> [MetadataEntry] {
        let limit = min(max(limit, 0), Limits.metadataListPageMax)
        guard limit > 0 else { return [] }
        // Start just after `after` (its successor in byte order is after + NUL).
        let start = after.map { Array($0.utf8) + [0] } ?? Array(prefix.utf8)
        let response = try await call("/v3/kv/range", [
            "key": Data(start).base64EncodedString(),
            "range_end": Data(Self.prefixEnd(Array(prefix.utf8))).base64EncodedString(),
            "limit": String(limit),
        ])
        return try (response["kvs"] as? [[String: Any]] ?? []).map(Self.entry)
    }

    public func commit(if conditions: [MetadataCondition], then mutations: [MetadataMutation]) async throws(MetadataError) -> Int64? {
        try MetadataValidation.check(conditions, mutations)
        let compare: [[String: Any]] = conditions.map {
            switch $0 {
            case .absent(let key):
                ["key": Self.b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"]
            case .revision(let key, let revision):
                ["key": Self.b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": String(revision)]
            }
        }
        let success: [[String: Any]] = mutations.map {
            switch $0 {
            case .put(let key, let value, let lease):
                var put: [String: Any] = ["key": Self.b64(key), "value": Data(value).base64EncodedString()]
                if let lease { put["lease"] = String(lease.value) }
                return ["request_put": put]
            case .delete(let key):
                return ["request_delete_range": ["key": Self.b64(key)]]
            }
        }
        let response = try await call("/v3/kv/txn", ["compare": compare, "success": success, "failure": [] as [Any]])
        // etcd omits false fields: no "succeeded" means the conditions failed.
        guard response["succeeded"] as? Bool == true else { return nil }
        return Self.revision(response)
    }

    /// etcd's raised alarms (`NOSPACE`, `CORRUPT`), one entry per member and alarm.
    public func alarms() async throws(MetadataError) -> [String] {
        let response = try await call("/v3/maintenance/alarm", ["action": "GET"])
        return (response["alarms"] as? [[String: Any]] ?? []).map { alarm in
            "\(alarm["alarm"] as? String ?? "?") on member \(alarm["memberID"] as? String ?? "?")"
        }
    }

    public func grantLease(ttlSeconds: Int) async throws(MetadataError) -> LeaseID {
        guard ttlSeconds >= 1, ttlSeconds <= 86_400 else {
            throw MetadataError(.invalidArgument, "lease TTL must be 1...86400 seconds, got \(ttlSeconds)")
        }
        let response = try await call("/v3/lease/grant", ["TTL": ttlSeconds])
        guard let id = (response["ID"] as? String).flatMap(Int64.init) else {
            throw MetadataError(.storageFailure, "etcd granted a lease without an id")
        }
        return LeaseID(id)
    }

    public func renewLease(_ lease: LeaseID) async throws(MetadataError) {
        let line = try await callStreamingFirstLine("/v3/lease/keepalive", ["ID": String(lease.value)])
        let result = line["result"] as? [String: Any] ?? [:]
        // An expired lease answers with no (zero) TTL.
        guard let ttl = (result["TTL"] as? String).flatMap(Int64.init), ttl > 0 else {
            throw MetadataError(.notFound, "lease \(lease) has expired or does not exist")
        }
    }

    public func revokeLease(_ lease: LeaseID) async throws(MetadataError) {
        do {
            _ = try await call("/v3/lease/revoke", ["ID": String(lease.value)])
        } catch where error.code == .notFound {
            return
        }
    }

    public func watch(prefix: String, fromRevision revision: Int64?) -> AsyncThrowingStream<MetadataEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<MetadataEvent, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(Limits.metadataWatchBufferMax))
        var create: [String: Any] = [
            "key": Self.b64(prefix), "range_end": Data(Self.prefixEnd(Array(prefix.utf8))).base64EncodedString(),
        ]
        if let revision { create["start_revision"] = String(revision) }
        let body = try! JSONSerialization.data(withJSONObject: ["create_request": create])
        let task = Task { [endpoints, client] in
            do {
                var request = HTTPClientRequest(url: endpoints[0] + "/v3/watch")
                request.method = .POST
                request.body = .bytes(ByteBuffer(bytes: body))
                let response = try await client.execute(request, deadline: .distantFuture)
                var pending: [UInt8] = []
                for try await chunk in response.body {
                    pending += Array(buffer: chunk)
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = Array(pending[..<newline])
                        pending.removeFirst(newline + 1)
                        try Self.deliverWatch(line, to: continuation)
                    }
                }
                continuation.finish(throwing: MetadataError(.unavailable, "etcd closed the watch"))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: - Private

    private static func deliverWatch(_ line: [UInt8], to continuation: AsyncThrowingStream<MetadataEvent, any Error>.Continuation) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { return }
        if let error = object["error"] as? [String: Any] {
            throw MetadataError(.unavailable, "etcd watch failed: \(error["message"] ?? "?")")
        }
        guard let result = object["result"] as? [String: Any] else { return }
        if let compacted = (result["compact_revision"] as? String).flatMap(Int64.init), compacted > 0 {
            throw MetadataError(.compacted, "etcd has compacted history up to revision \(compacted)")
        }
        if result["canceled"] as? Bool == true {
            throw MetadataError(.unavailable, "etcd cancelled the watch: \(result["cancel_reason"] ?? "")")
        }
        for event in result["events"] as? [[String: Any]] ?? [] {
            let kv = event["kv"] as? [String: Any] ?? [:]
            let key = (kv["key"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
            let value = (kv["value"] as? String).flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? []
            let revision = (kv["mod_revision"] as? String).flatMap(Int64.init) ?? 0
            // etcd omits the default type, PUT.
            let kind: MetadataEvent.Kind = event["type"] as? String == "DELETE" ? .delete : .put
            if case .dropped = continuation.yield(MetadataEvent(kind: kind, key: key, value: kind == .delete ? [] : value, revision: revision)) {
                throw MetadataError(.limitExceeded, "watcher fell \(Limits.metadataWatchBufferMax) events behind")
            }
        }
    }

    /// POSTs a JSON body to the first endpoint that answers; returns the JSON answer.
    /// A call, retried while etcd is between leaders ("leader changed", no leader, every
    /// member unreachable) for up to `Limits.metadataUnavailableRetrySeconds`: a member's
    /// death costs an election of a few seconds, which requests ride through rather than
    /// failing. Retrying is safe: reads are reads, every write Coffre makes is either
    /// conditional (a second application fails its condition) or an idempotent put.
    private func call(_ path: String, _ body: [String: Any]) async throws(MetadataError) -> [String: Any] {
        let deadline = ContinuousClock.now + .seconds(Limits.metadataUnavailableRetrySeconds)
        var pause = Duration.milliseconds(100)
        while true {
            do {
                return try await callOnce(path, body)
            } catch where error.code == .unavailable && ContinuousClock.now + pause < deadline {
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(1))
            }
        }
    }

    private func callOnce(_ path: String, _ body: [String: Any]) async throws(MetadataError) -> [String: Any] {
        let data = try! JSONSerialization.data(withJSONObject: body)
        var failures: [String] = []
        for index in order {
            let endpoint = endpoints[index]
            var request = HTTPClientRequest(url: endpoint + path)
            request.method = .POST
            request.body = .bytes(ByteBuffer(bytes: data))
            let bytes: ByteBuffer
            do {
                let response = try await client.execute(request, timeout: timeout)
                bytes = try await response.body.collect(upTo: 4 << 20)
            } catch {
                failures.append("\(endpoint): \(error)")
                continue
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any] else {
                throw MetadataError(.storageFailure, "etcd at \(endpoint) answered \(path) with something other than JSON")
            }
            preferred.store(index, ordering: .relaxed)
            try Self.checkError(object, path: path)
            return object
        }
        throw MetadataError(.unavailable, "no etcd endpoint answered \(path): \(failures.joined(separator: "; "))")
    }

    /// POSTs to a streaming endpoint and returns its first JSON line.
    private func callStreamingFirstLine(_ path: String, _ body: [String: Any]) async throws(MetadataError) -> [String: Any] {
        let data = try! JSONSerialization.data(withJSONObject: body)
        var failures: [String] = []
        for index in order {
            let endpoint = endpoints[index]
            var request = HTTPClientRequest(url: endpoint + path)
            request.method = .POST
            request.body = .bytes(ByteBuffer(bytes: data))
            var line: [UInt8] = []
            do {
                let response = try await client.execute(request, timeout: timeout)
                for try await chunk in response.body {
                    line += Array(buffer: chunk)
                    if let newline = line.firstIndex(of: UInt8(ascii: "\n")) {
                        line = Array(line[..<newline])
                        break
                    }
                }
            } catch {
                failures.append("\(endpoint): \(error)")
                continue
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw MetadataError(.storageFailure, "etcd at \(endpoint) answered \(path) with something other than JSON")
            }
            preferred.store(index, ordering: .relaxed)
            try Self.checkError(object, path: path)
            return object
        }
        throw MetadataError(.unavailable, "no etcd endpoint answered \(path): \(failures.joined(separator: "; "))")
    }

    /// etcd's errors carry a gRPC status code: 5 is NotFound, 14 Unavailable, 4 DeadlineExceeded.
    private static func checkError(_ object: [String: Any], path: String) throws(MetadataError) {
        let error = (object["error"] as? [String: Any]) ?? (object["code"] != nil ? object : nil)
        guard let error else { return }
        let message = error["message"] as? String ?? "\(error)"
        let code: ErrorCode =
            switch error["code"] as? Int {
            case 5: .notFound
            case 4, 14: .unavailable
            // ResourceExhausted: "mvcc: database space exceeded", the NOSPACE alarm.
            case 8: .metadataFull
            case 3: .invalidArgument
            default: .storageFailure
            }
        throw MetadataError(code, "etcd \(path): \(message)")
    }

    private static func entry(_ kv: [String: Any]) throws(MetadataError) -> MetadataEntry {
        guard let keyText = kv["key"] as? String, let key = Data(base64Encoded: keyText) else {
            throw MetadataError(.storageFailure, "etcd returned an entry without a key")
        }
        let value = (kv["value"] as? String).flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? []
        let lease = (kv["lease"] as? String).flatMap(Int64.init)
        return MetadataEntry(
            key: String(decoding: key, as: UTF8.self), value: value,
            modRevision: (kv["mod_revision"] as? String).flatMap(Int64.init) ?? 0,
            createRevision: (kv["create_revision"] as? String).flatMap(Int64.init) ?? 0,
            lease: lease.map(LeaseID.init))
    }

    private static func revision(_ response: [String: Any]) -> Int64 {
        ((response["header"] as? [String: Any])?["revision"] as? String).flatMap(Int64.init) ?? 0
    }

    private static func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// The end of the key range that starts with `prefix` (etcd's convention): the prefix
    /// with its last byte below 0xFF incremented and the rest dropped; "\0" for all keys.
    static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]
    }
}
