import Checksum
public import CoffreAPI
import CoffreModel
public import Foundation
public import NIOCore
public import NodeClient
import Synchronization

/// Storage nodes in memory behind the `ShardTransport` seam, with faults to inject: the
/// twin of real nodes for unit tests and the deterministic simulation of the logic above.
///
/// Each node is addressed by a base URL (`mem://<id>`). Faults:
/// - `down`: every call fails as `unavailable` (a killed process);
/// - `partitioned`: the same, but the node keeps its shards and its clock (a cut link);
/// - `slow`: every call waits first (a frozen or overloaded node);
/// - `corrupt(key)`: flips a byte of a stored shard (bit rot; the node reports the
///   mismatch on a read, as a real one does);
/// - `full`: writes are refused with `insufficient_storage`.
public final class InMemoryShardTransport: ShardTransport {
    public struct Node: Sendable {
        public var id: String
        public var country: String
        public var region: String
        public var capacityBytes: Int64
        public var shards: [[UInt8]: StoredShard] = [:]
        public var down = false
        public var full = false
        public var delay: Duration = .zero
        public var fault: NodeFault?
        /// Down and delay before a drill's fault, given back when it is lifted.
        var beforeFault: (down: Bool, delay: Duration)?
        /// Counts wipes: the node's store incarnation is `<id>#<disk>`.
        public var disk = 1

        var usedBytes: Int64 { shards.values.reduce(0) { $0 + Int64($1.body.count) } }
    }

    public struct StoredShard: Sendable {
        public var body: [UInt8]
        public var checksum: UInt32
        public var createdAt: Int64
        /// Set by `corrupt`: the body no longer matches its checksum (what a CRC over the
        /// body would tell, without computing one: the simulation asks after every step).
        public var rotten = false
    }

    private let nodes: Mutex<[String: Node]>
    /// Milliseconds since 1970 as the twin's clock reads them (shard creation times).
    private let clock: @Sendable () -> Int64

    public init(clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        nodes = Mutex([:])
        self.clock = clock
    }

    /// Adds a node; returns its base URL.
    @discardableResult
    public func addNode(id: String, country: String, region: String, capacityBytes: Int64 = 1 << 40) -> String {
        let base = "mem://" + id
        nodes.withLock { $0[base] = Node(id: id, country: country, region: region, capacityBytes: capacityBytes) }
        return base
    }

    public func base(of id: String) -> String { "mem://" + id }

    public func setDown(_ id: String, _ down: Bool) { nodes.withLock { $0[base(of: id)]?.down = down } }
    public func isUp(_ id: String) -> Bool { nodes.withLock { $0[base(of: id)].map { !$0.down } ?? false } }
    public func setFull(_ id: String, _ full: Bool) { nodes.withLock { $0[base(of: id)]?.full = full } }
    public func setDelay(_ id: String, _ delay: Duration) { nodes.withLock { $0[base(of: id)]?.delay = delay } }
    /// Every node as it is now, by id (a copy: for checks that look at many shards at once).
    public func snapshot() -> [String: Node] {
        nodes.withLock { nodes in Dictionary(uniqueKeysWithValues: nodes.values.map { ($0.id, $0) }) }
    }

    /// The node's store incarnation, as its health reports it.
    public func incarnation(_ id: String) -> String { nodes.withLock { $0[base(of: id)].map { "\($0.id)#\($0.disk)" } ?? "" } }

    /// Loses every shard of a node (a replaced disk): it reports a new incarnation.
    public func wipe(_ id: String) {
        nodes.withLock { nodes in
            nodes[base(of: id)]?.shards = [:]
            nodes[base(of: id)]?.disk += 1
        }
    }

    /// Flips one byte of a stored shard's body; false when the node has no such shard.
    @discardableResult
    public func corrupt(_ id: String, key: [UInt8], at offset: Int = 0) -> Bool {
        nodes.withLock { nodes in
            guard var shard = nodes[base(of: id)]?.shards[key], !shard.body.isEmpty else { return false }
            shard.body[offset % shard.body.count] ^= 0x5a
            shard.rotten = true
            nodes[base(of: id)]?.shards[key] = shard
            return true
        }
    }

    /// The keys a node holds, sorted.
    public func keys(_ id: String) -> [[UInt8]] {
        nodes.withLock { ($0[base(of: id)]?.shards.keys).map { $0.sorted { $0.lexicographicallyPrecedes($1) } } ?? [] }
    }

    public func shard(_ id: String, key: [UInt8]) -> StoredShard? { nodes.withLock { $0[base(of: id)]?.shards[key] } }

    // MARK: - ShardTransport

    public func put(base: String, key: [UInt8], body: ByteBuffer, checksum: UInt32) async throws(NodeClientError) {
        try await reach(base)
        let bytes = Array(body.readableBytesView)
        let actual = bytes.withUnsafeBytes { CRC32C.checksum($0) }
        guard actual == checksum else { throw NodeClientError(.corrupt, "\(base): body does not match its checksum") }
        try nodes.withLock { nodes throws(NodeClientError) in
            guard let node = nodes[base] else { throw NodeClientError(.unavailable, "\(base): no such node") }
            guard !node.full, node.usedBytes + Int64(bytes.count) <= node.capacityBytes else {
                throw NodeClientError(.nodeFull, "\(base): full, no room for \(ByteCount(bytes.count))")
            }
            nodes[base]!.shards[key] = StoredShard(body: bytes, checksum: checksum, createdAt: clock())
        }
    }

    public func get(base: String, key: [UInt8], into buffer: inout ByteBuffer) async throws(NodeClientError) -> UInt32 {
        try await reach(base)
        let shard = nodes.withLock { $0[base]?.shards[key] }
        guard let shard else { throw NodeClientError(.notFound, "\(base): no shard \(Hex.encode(key))") }
        let actual = shard.body.withUnsafeBytes { CRC32C.checksum($0) }
        guard actual == shard.checksum else { throw NodeClientError(.corrupt, "\(base): shard \(Hex.encode(key)) fails its checksum") }
        buffer.clear()
        buffer.writeBytes(shard.body)
        return shard.checksum
    }

    public func delete(base: String, key: [UInt8], ifCreatedAt: Int64?) async throws(NodeClientError) {
        try await reach(base)
        try nodes.withLock { nodes throws(NodeClientError) in
            if let ifCreatedAt, nodes[base]?.shards[key]?.createdAt != ifCreatedAt {
                throw NodeClientError(.conflict, "\(base): shard absent or not created at \(ifCreatedAt)")
            }
            nodes[base]?.shards.removeValue(forKey: key)
        }
    }

    /// Sets a stored shard's creation time (to age it past a grace period in tests).
    public func setCreatedAt(_ id: String, key: [UInt8], _ createdAt: Int64) {
        nodes.withLock { $0[base(of: id)]?.shards[key]?.createdAt = createdAt }
    }

    public func list(base: String, prefix: [UInt8], after: String?, limit: Int) async throws(NodeClientError) -> ShardPage {
        try await reach(base)
        let all = nodes.withLock { $0[base]?.shards ?? [:] }
        let sorted = all.filter { $0.key.starts(with: prefix) }.map { (Hex.encode($0.key), $0.value) }
            .filter { after == nil || $0.0 > after! }.sorted { $0.0 < $1.0 }
        let page = sorted.prefix(limit).map {
            ShardInfo(key: $0.0, length: Int64($0.1.body.count), checksum: NodeAPI.checksumText($0.1.checksum), createdAt: $0.1.createdAt)
        }
        return ShardPage(shards: Array(page), next: sorted.count > limit ? page.last?.key : nil)
    }

    public func health(base: String) async throws(NodeClientError) -> NodeHealth {
        try await reach(base)
        guard let node = nodes.withLock({ $0[base] }) else { throw NodeClientError(.unavailable, "\(base): no such node") }
        return NodeHealth(
            node: node.id, country: node.country, region: node.region, capacityBytes: node.capacityBytes,
            usedBytes: node.usedBytes, shardCount: node.shards.count, status: "ok",
            incarnation: incarnation(node.id))
    }

    /// A drill's fault: `stop` and `blackhole` take the node down, `slow` delays it; lifting
    /// it brings the node back as it was before.
    public func setFault(base: String, _ fault: NodeFault?) async throws(NodeClientError) {
        nodes.withLock { nodes in
            guard var node = nodes[base] else { return }
            if node.beforeFault == nil { node.beforeFault = (node.down, node.delay) }
            if let fault {
                let before = node.beforeFault!
                node.down = fault.mode == .slow ? before.down : true
                node.delay = fault.mode == .slow ? .milliseconds(fault.latencyMilliseconds) : before.delay
            } else {
                (node.down, node.delay) = node.beforeFault!
                node.beforeFault = nil
            }
            node.fault = fault
            nodes[base] = node
        }
    }

    /// The drill fault a node holds.
    public func fault(_ id: String) -> NodeFault? { nodes.withLock { $0[base(of: id)]?.fault } }

    public func scrub(base: String, after: String?, limit: Int) async throws(NodeClientError) -> ScrubStep {
        try await reach(base)
        let all = nodes.withLock { $0[base]?.shards ?? [:] }
        let sorted = all.map { (Hex.encode($0.key), $0.value) }.filter { after == nil || $0.0 > after! }.sorted { $0.0 < $1.0 }
        let page = sorted.prefix(limit)
        let corrupt = page.filter { entry in entry.1.body.withUnsafeBytes { CRC32C.checksum($0) } != entry.1.checksum }
            .map { ScrubStep.Finding(key: $0.0, reason: "checksum mismatch") }
        return ScrubStep(
            scanned: page.count, bytesVerified: page.reduce(0) { $0 + $1.1.body.count }, corrupt: corrupt,
            next: sorted.count > limit ? page.last?.0 : nil)
    }

    private func reach(_ base: String) async throws(NodeClientError) {
        let node = nodes.withLock { $0[base] }
        guard let node else { throw NodeClientError(.unavailable, "\(base): no such node") }
        if node.delay > .zero {
            do { try await Task.sleep(for: node.delay) } catch { throw NodeClientError(.unavailable, "\(base): cancelled") }
        }
        guard !node.down else { throw NodeClientError(.unavailable, "\(base): connection refused") }
    }
}
