public import CoffreAPI
public import NIOCore

/// How a coordinator reaches storage nodes: the seam between the object path (reads,
/// repair, garbage collection) and the network.
///
/// `StorageNodeClient` is the real one (HTTP/1.1 over mutual TLS); `TestSupport` has an
/// in-memory twin that injects faults (down, slow, corrupt, partitioned) so that the logic
/// above it can be driven deterministically. A node is addressed by its base URL.
public protocol ShardTransport: Sendable {
    /// Stores a shard; the node checks `checksum` (CRC-32C) before acknowledging.
    func put(base: String, key: [UInt8], body: ByteBuffer, checksum: UInt32) async throws(NodeClientError)

    /// Reads a shard into `buffer` (cleared first) and returns the checksum the node sent.
    func get(base: String, key: [UInt8], into buffer: inout ByteBuffer) async throws(NodeClientError) -> UInt32

    /// Deletes a shard; deleting a missing shard is not an error. With `ifCreatedAt`
    /// (milliseconds since 1970), only the shard created then: `conflict` otherwise.
    func delete(base: String, key: [UInt8], ifCreatedAt: Int64?) async throws(NodeClientError)

    /// A page of the node's shards whose key starts with `prefix`, after the cursor `after`.
    func list(base: String, prefix: [UInt8], after: String?, limit: Int) async throws(NodeClientError) -> ShardPage

    /// The node's identity, capacity and use.
    func health(base: String) async throws(NodeClientError) -> NodeHealth

    /// One bounded step of the node's scrub, from the cursor `after`.
    func scrub(base: String, after: String?, limit: Int) async throws(NodeClientError) -> ScrubStep

    /// Puts a drill's fault on the node, or lifts it (nil).
    func setFault(base: String, _ fault: NodeFault?) async throws(NodeClientError)
}

extension StorageNodeClient: ShardTransport {}

extension ShardTransport {
    public func delete(base: String, key: [UInt8]) async throws(NodeClientError) {
        try await delete(base: base, key: key, ifCreatedAt: nil)
    }

    public func list(base: String, prefix: [UInt8] = [], after: String? = nil) async throws(NodeClientError) -> ShardPage {
        try await list(base: base, prefix: prefix, after: after, limit: 1000)
    }

    public func scrub(base: String, after: String? = nil) async throws(NodeClientError) -> ScrubStep {
        try await scrub(base: base, after: after, limit: 100)
    }
}
