import Checksum
public import CoffreModel
import ErasureCoding
import Foundation
public import NIOCore
import NodeClient
import Placement
public import Metadata

/// Writes one object: takes ciphertext in pieces of any size, cuts it into segments, and
/// writes each segment's shards while the next segment arrives. At most two segments are in
/// memory at once (one filling, one being written), whatever the object's size.
///
/// Use from one task. `finish()` returns the manifest; the caller commits it (with whatever
/// else must change atomically: the tree, the account's usage). Until then nothing is
/// visible, and shards of an upload that is never committed are garbage.
public final class ObjectWriter: @unchecked Sendable {
    let store: ObjectStore
    public let objectId: String
    public let owner: String
    /// The cluster's policy when the upload began, with the owner's excluded countries:
    /// every segment is written with it.
    let policy: PlacementPolicy
    /// The owner's excluded countries, recorded in the manifest for repair and rebalancing.
    let excluded: Set<Country>
    private var filling: ByteBuffer
    private var segments: [SegmentManifest] = []
    private var writing: Task<SegmentManifest, any Error>?
    private var nextIndex = 0
    public private(set) var length: Int64 = 0
    /// When the first shards went to nodes: from then on the collector's clock runs.
    private var firstShardsAt: Duration?
    /// The revision of this upload's intent and when it was last written, once the upload
    /// has more than one segment.
    private var intent: (revision: Int64, writtenAt: Duration)?

    init(store: ObjectStore, objectId: String, owner: String, excluding: Set<Country>) {
        self.store = store
        self.objectId = objectId
        self.owner = owner
        excluded = excluding
        policy = store.policy.excluding(excluding)
        filling = ByteBufferAllocator().buffer(capacity: 0)
    }

    deinit {
        // An upload that failed or was abandoned gives its buffer back too.
        if filling.capacity > 0 { store.buffers.give(filling) }
    }

    /// Adds ciphertext to the object.
    public func append(_ bytes: ByteBuffer) async throws {
        var bytes = bytes
        while bytes.readableBytes > 0 {
            // The segment is filled in a buffer with room for its parity: encoding needs no copy.
            if filling.capacity == 0 { filling = store.buffers.take() }
            let take = min(bytes.readableBytes, store.segmentSize - filling.readableBytes)
            var piece = bytes.readSlice(length: take)!
            filling.writeBuffer(&piece)
            length += Int64(take)
            if filling.readableBytes == store.segmentSize { try await startSegment() }
        }
    }

    /// Writes what is left and returns the manifest (not yet committed).
    public func finish() async throws -> ObjectManifest {
        if filling.readableBytes > 0 { try await startSegment() }
        if let writing {
            segments.append(try await writing.value)
            self.writing = nil
        }
        return ObjectManifest(
            id: objectId, owner: owner, length: length, segmentSize: store.segmentSize, policy: policy.erasure,
            segments: segments, createdAt: store.clock.wallMillis(), excludedCountries: excluded.isEmpty ? nil : excluded.sorted())
    }

    /// Encodes the segment just filled (in place: its buffer has room for the parity), waits
    /// for the segment being written, then starts writing this one.
    private func startSegment() async throws {
        try await keepIntentFresh()
        let encoded = try store.encodeSegment(&filling, policy: policy.erasure)
        if let writing { segments.append(try await writing.value) }
        let shards = filling
        filling = ByteBufferAllocator().buffer(capacity: 0)
        let index = nextIndex
        nextIndex += 1
        writing = Task(executorPreference: store.executor) { [store, objectId, policy] in
            try await store.writeSegment(objectId: objectId, index: index, shards: shards, encoded: encoded, policy: policy)
        }
    }
}

extension ObjectWriter {
    /// Keeps the collector off this upload's shards while it runs. Called before each
    /// segment's shards go out: the first segment only starts the clock (a one-segment upload
    /// costs no intent); the second writes an intent record that the collector respects, and
    /// later ones refresh it (by compare-and-swap) once a quarter of the grace has passed since
    /// it was written. Only a client that sends nothing for longer than the grace loses its
    /// upload.
    func keepIntentFresh() async throws {
        let now = store.clock.monotonic()
        guard let first = firstShardsAt else {
            firstShardsAt = now
            return
        }
        let grace = store.collectorGrace
        if let intent, now - intent.writtenAt <= grace / 4 { return }
        // Too late for a first intent: the collector may already have judged the first shards.
        if intent == nil, now - first > grace / 2 {
            throw CoordinatorError(.conflict, "upload \(objectId) was too slow for the collector's grace without an intent; upload again")
        }
        let record = Array(String(store.clock.wallMillis()).utf8)
        let key = Keyspace.upload(objectId)
        let revision: Int64?
        if let intent {
            revision = try await store.metadata.compareAndSwap(key, revision: intent.revision, record)
        } else {
            revision = try await store.metadata.create(key, record)
        }
        guard let revision else {
            throw CoordinatorError(.conflict, "upload \(objectId) outlived the collector's grace and its shards were collected; upload again")
        }
        intent = (revision, now)
    }

    /// What the commit of this upload must add: its intent unchanged (and deleted), or,
    /// without one, proof that its shards are too young for the collector.
    public func commitGuard() throws(CoordinatorError) -> (conditions: [MetadataCondition], mutations: [MetadataMutation]) {
        if let intent {
            return ([.revision(Keyspace.upload(objectId), intent.revision)], [.delete(Keyspace.upload(objectId))])
        }
        if let first = firstShardsAt, store.clock.monotonic() - first > store.collectorGrace / 2 {
            throw CoordinatorError(.conflict, "upload \(objectId) took longer than half the collector's grace without an intent; upload again")
        }
        return ([], [])
    }
}

/// A segment encoded in its buffer: its length, shard length and the shards' checksums.
struct EncodedSegment: Sendable {
    let length: Int
    let shardLength: Int
    let checksums: [UInt32]
}

extension ObjectStore {
    /// Erasure-codes a segment in place: `buffer` holds the segment's ciphertext and has room
    /// for the zero padding and the parity shards after it.
    func encodeSegment(_ buffer: inout ByteBuffer, policy erasure: ErasurePolicy) throws -> EncodedSegment {
        let length = buffer.readableBytes
        let layout = SegmentLayout(policy: erasure, segmentLength: length)
        let codec = codec(erasure)
        let shardLength = layout.shardLength
        buffer.writeRepeatingByte(0, count: layout.totalShardBytes - length)
        try buffer.withUnsafeMutableReadableBytes { all in
            try codec.encode(
                segment: UnsafeRawBufferPointer(rebasing: all[..<layout.paddedLength]),
                parity: UnsafeMutableRawBufferPointer(rebasing: all[layout.paddedLength...]), shardLength: shardLength)
        }
        let checksums = (0..<erasure.totalShards).map { shard in
            buffer.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(shard * shardLength)..<((shard + 1) * shardLength)])) }
        }
        return EncodedSegment(length: length, shardLength: shardLength, checksums: checksums)
    }

    /// Writes an encoded segment's k + m shards (see `writeShards`). `shards` goes back to
    /// the buffer pool afterwards.
    func writeSegment(
        objectId: String, index: Int, shards: ByteBuffer, encoded: EncodedSegment, policy: PlacementPolicy, generation: Int = 0, pooled: Bool = true
    ) async throws -> SegmentManifest {
        defer { if pooled { buffers.give(shards) } }
        let shardLength = encoded.shardLength
        let total = policy.erasure.totalShards
        var bodies: [Int: ByteBuffer] = [:]
        var checksums: [Int: UInt32] = [:]
        for shard in 0..<total {
            bodies[shard] = shards.getSlice(at: shards.readerIndex + shard * shardLength, length: shardLength)!
            checksums[shard] = encoded.checksums[shard]
        }
        let (nodes, debt) = try await writeShards(
            objectId: objectId, segment: index, generation: generation, policy: policy, shardLength: shardLength, bodies: bodies,
            checksums: checksums, fixed: [:])
        return SegmentManifest(
            index: index, length: encoded.length, shardLength: shardLength,
            shards: (0..<total).map { ShardLocation(index: $0, node: nodes[$0]!, checksum: encoded.checksums[$0]) },
            placementDebt: debt, generation: generation)
    }
}
