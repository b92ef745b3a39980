/// A Reed-Solomon policy: k data shards and m parity shards per segment.
///
/// Any k of the k + m shards rebuild the segment; up to m may be lost.
public struct ErasurePolicy: Hashable, Sendable, Codable, CustomStringConvertible {
    public let dataShards: Int
    public let parityShards: Int

    enum CodingKeys: String, CodingKey { case dataShards = "k", parityShards = "m" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            dataShards: try container.decode(Int.self, forKey: .dataShards),
            parityShards: try container.decode(Int.self, forKey: .parityShards))
    }

    /// Validates the policy against `Limits`; invalid input throws, never crashes.
    public init(dataShards: Int, parityShards: Int) throws(ModelError) {
        guard dataShards >= 1, dataShards <= Limits.dataShardsMax else {
            throw ModelError(
                .invalidArgument,
                "data shards must be 1...\(Limits.dataShardsMax), got \(dataShards)")
        }
        guard parityShards >= 0, parityShards <= Limits.parityShardsMax else {
            throw ModelError(
                .invalidArgument,
                "parity shards must be 0...\(Limits.parityShardsMax), got \(parityShards)")
        }
        guard dataShards + parityShards <= Limits.shardsMax else {
            throw ModelError(
                .limitExceeded,
                "k + m must be at most \(Limits.shardsMax), got \(dataShards + parityShards)")
        }
        self.dataShards = dataShards
        self.parityShards = parityShards
    }

    public var totalShards: Int { dataShards + parityShards }

    public var description: String { "RS(\(dataShards),\(parityShards))" }

    /// Bytes in each shard for a segment of `segmentLength` bytes: ceil(length / k).
    ///
    /// The padding rule (Docs/format.md, "Erasure coding"): the segment is cut into k slices
    /// of this length, the last one padded with zero bytes; the manifest keeps the real length.
    public func shardLength(forSegmentLength segmentLength: Int) -> Int {
        precondition(segmentLength >= 0)
        return (segmentLength + dataShards - 1) / dataShards
    }
}
