public import CoffreModel

/// How a segment of ciphertext is laid out as k data shards.
///
/// The padding rule (Docs/format.md, "Erasure coding"): shard length L = ceil(S / k) for a
/// segment of S bytes; data shard i holds bytes [i*L, (i+1)*L) of the segment, the bytes past
/// S being zero. The manifest records S, and a reader drops the padding after decoding.
/// A 0-byte segment has L = 0 and no shard bytes at all.
public struct SegmentLayout: Hashable, Sendable {
    public let policy: ErasurePolicy
    public let segmentLength: Int
    public let shardLength: Int

    public init(policy: ErasurePolicy, segmentLength: Int) {
        precondition(segmentLength >= 0)
        self.policy = policy
        self.segmentLength = segmentLength
        self.shardLength = policy.shardLength(forSegmentLength: segmentLength)
    }

    /// Bytes of the padded data area: k x L.
    public var paddedLength: Int { shardLength * policy.dataShards }
    /// Bytes of zero padding after the segment.
    public var paddingLength: Int { paddedLength - segmentLength }
    /// Bytes of all k + m shards.
    public var totalShardBytes: Int { shardLength * policy.totalShards }
}
