import Foundation

/// Where one shard of a segment lives.
public struct ShardLocation: Codable, Hashable, Sendable {
    /// Shard number: 0..<k data, k..<k+m parity.
    public let index: Int
    public let node: NodeID
    /// CRC-32C of the shard body.
    public let checksum: UInt32

    public init(index: Int, node: NodeID, checksum: UInt32) {
        self.index = index
        self.node = node
        self.checksum = checksum
    }
}

/// One erasure-coded run of an object's ciphertext.
public struct SegmentManifest: Codable, Hashable, Sendable {
    public let index: Int
    /// Ciphertext bytes in this segment (before padding).
    public let length: Int
    /// Bytes of each shard: ceil(length / k).
    public let shardLength: Int
    /// k + m locations, by shard number.
    public let shards: [ShardLocation]
    /// True when placement could not honour the country rule (see Docs/architecture.md).
    public let placementDebt: Bool
    /// The segment's erasure scheme when it differs from the manifest's (a segment re-encoded
    /// by a policy change while others of its object are not yet); absent otherwise.
    public let policy: ErasurePolicy?
    /// How many times the segment was re-encoded; its shards' keys name it (absent: 0, the
    /// first encoding), so the shards of two encodings never share a key.
    public let generation: Int?

    public init(
        index: Int, length: Int, shardLength: Int, shards: [ShardLocation], placementDebt: Bool, policy: ErasurePolicy? = nil,
        generation: Int? = nil
    ) {
        self.index = index
        self.length = length
        self.shardLength = shardLength
        self.shards = shards
        self.placementDebt = placementDebt
        self.policy = policy
        self.generation = generation == 0 ? nil : generation
    }

    /// The key of one of this segment's shards on a node (see `ObjectManifest.shardKey`).
    public func shardKey(object: String, shard: Int) -> [UInt8] {
        ObjectManifest.shardKey(object: object, segment: index, shard: shard, generation: generation ?? 0)
    }
}

/// Everything needed to read an object back: its segments and where their shards are.
///
/// Stored in the metadata store and changed only by compare-and-swap; an object is visible
/// only once its manifest is committed.
public struct ObjectManifest: Codable, Hashable, Sendable {
    public let id: String
    public let owner: String
    /// Ciphertext bytes of the whole object.
    public let length: Int64
    /// Ciphertext bytes per segment (the last may be shorter).
    public let segmentSize: Int
    public let policy: ErasurePolicy
    public let segments: [SegmentManifest]
    /// Milliseconds since 1970.
    public let createdAt: Int64
    /// Countries its owner excluded when it was written: none of its shards goes there, not
    /// on upload, repair, rebalancing or re-encoding (absent: none; sorted).
    public let excludedCountries: [Country]?

    public init(
        id: String, owner: String, length: Int64, segmentSize: Int, policy: ErasurePolicy, segments: [SegmentManifest], createdAt: Int64,
        excludedCountries: [Country]? = nil
    ) {
        self.id = id
        self.owner = owner
        self.length = length
        self.segmentSize = segmentSize
        self.policy = policy
        self.segments = segments
        self.createdAt = createdAt
        self.excludedCountries = excludedCountries
    }

    /// The owner's excluded countries, as a set.
    public var excluded: Set<Country> { Set(excludedCountries ?? []) }

    /// The shard key on a node: `<object id>/<segment>/<shard>`, and
    /// `<object id>/<segment>/<shard>/<generation>` for a segment re-encoded `generation` times.
    public static func shardKey(object: String, segment: Int, shard: Int, generation: Int = 0) -> [UInt8] {
        Array((generation == 0 ? "\(object)/\(segment)/\(shard)" : "\(object)/\(segment)/\(shard)/\(generation)").utf8)
    }

    /// A segment's erasure scheme: its own, or the manifest's.
    public func erasure(of segment: SegmentManifest) -> ErasurePolicy { segment.policy ?? policy }

    /// Whether every segment is encoded with `target`.
    public func isEncoded(with target: ErasurePolicy) -> Bool { segments.allSatisfy { erasure(of: $0) == target } }
}

extension ObjectManifest {
    /// Decodes a manifest from the metadata store and checks its shape (`validate`): a record
    /// that is not valid JSON, or whose numbers disagree, throws `corrupt` and never
    /// reaches code that would index by its numbers.
    public static func decode(_ bytes: some Collection<UInt8>) throws(ModelError) -> ObjectManifest {
        let manifest: ObjectManifest
        do { manifest = try JSONDecoder().decode(ObjectManifest.self, from: Data(bytes)) } catch {
            throw ModelError(.corrupt, "manifest is not readable JSON: \(error)")
        }
        try manifest.validate()
        return manifest
    }

    /// Checks that the numbers agree as the writer makes them: segments cover `length` in
    /// order, every segment has k + m shards numbered in order, and each shard's length is
    /// what its segment's length and scheme give.
    public func validate() throws(ModelError) {
        func fail(_ what: String) -> ModelError { ModelError(.corrupt, "manifest of \(id): \(what)") }
        guard !id.isEmpty, id.utf8.count <= Limits.objectIdSizeMax, !id.contains("/") else {
            throw fail("object id of \(id.utf8.count) bytes, or with a \"/\"")
        }
        guard length >= 0 else { throw fail("length \(length)") }
        guard segmentSize >= 1, segmentSize <= Limits.segmentSizeMax else { throw fail("segment size \(segmentSize)") }
        let expected = length / Int64(segmentSize) + (length % Int64(segmentSize) == 0 ? 0 : 1)
        guard Int64(segments.count) == expected else { throw fail("\(segments.count) segments for \(length) bytes, expected \(expected)") }
        var covered: Int64 = 0
        for (position, segment) in segments.enumerated() {
            let isLast = position == segments.count - 1
            guard segment.index == position else { throw fail("segment \(position) is numbered \(segment.index)") }
            guard segment.length >= 1, segment.length <= segmentSize, isLast || segment.length == segmentSize else {
                throw fail("segment \(position) has \(segment.length) bytes")
            }
            covered += Int64(segment.length)
            let erasure = erasure(of: segment)
            guard segment.shards.count == erasure.totalShards else {
                throw fail("segment \(position) has \(segment.shards.count) shards, \(erasure) needs \(erasure.totalShards)")
            }
            for (number, shard) in segment.shards.enumerated() where shard.index != number {
                throw fail("shard \(number) of segment \(position) is numbered \(shard.index)")
            }
            guard segment.shardLength == erasure.shardLength(forSegmentLength: segment.length) else {
                throw fail("segment \(position) has shards of \(segment.shardLength) bytes for \(segment.length) bytes under \(erasure)")
            }
            guard (segment.generation ?? 0) >= 0 else { throw fail("segment \(position) has generation \(segment.generation ?? 0)") }
        }
        guard covered == length else { throw fail("segments hold \(covered) bytes of \(length)") }
    }
}

extension Limits {
    /// Longest object id a manifest may carry (coordinators make 22-character ids).
    public static let objectIdSizeMax = 128
    /// Default ciphertext bytes per segment.
    public static let segmentSizeDefault = 16 << 20
    /// Largest segment; a coordinator holds at most two per upload in memory.
    public static let segmentSizeMax = 256 << 20
    /// Segment buffers a coordinator keeps for reuse (each holds a segment's data and
    /// parity shards: 24 MiB for RS(6,3) over 16 MiB segments).
    public static let segmentBuffersPooledMax = 6
    /// Tries of a commit that adds to the tree when other commits moved what it depends on
    /// (the account's usage, the folder) before a conflict is answered.
    public static let treeCommitAttemptsMax = 10
    /// Session records a coordinator keeps in memory.
    public static let sessionCacheMax = 100_000
    /// Segments a read fetches ahead of the one being sent.
    public static let readAheadSegments = 3
    /// Shard buffers a coordinator keeps for reuse by reads (four segments' worth for RS(6,3)).
    public static let shardBuffersPooledMax = 36
    /// Attempts to place one shard before an upload fails (first node plus alternates).
    public static let shardWriteAttemptsMax = 3
    /// Bytes of a refused upload's body a coordinator reads and drops before answering.
    public static let uploadDrainMax = 1 << 30
    /// Shard transfers one coordinator runs at once per transfer.
    public static let inflightShardWritesMax = 64
}
