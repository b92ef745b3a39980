public import CoffreModel

/// A segment that a drill would leave with too few healthy shards.
public struct SegmentAtRisk: Hashable, Sendable, Codable {
    public let objectId: String
    public let segment: Int
    /// Healthy shards it would have while the fault lasts.
    public let healthy: Int
}

/// What a drill's fault would do to redundancy, before it starts.
public struct DrillPreflight: Hashable, Sendable {
    /// The fewest healthy shards any segment would have during the drill; nil: no segment.
    public var lowestHealthy: Int?
    /// Segments that would fall under k + margin, riskiest first (at most `listed`).
    public var atRisk: [SegmentAtRisk] = []
    /// How many segments would fall under k + margin.
    public var atRiskCount = 0
    /// Segments looked at.
    public var segments = 0

    /// The drill may run: no segment falls under k + margin.
    public var allowed: Bool { atRiskCount == 0 }
}

/// The pre-flight check of a failover drill, with no I/O: for the nodes a drill would take
/// away (a node, a country's nodes; a coordinator takes none), the fewest healthy shards any
/// segment keeps — counting only shards on nodes that are up now and outside the fault — and
/// the segments that would fall under k + margin, for which the drill is refused.
public enum DrillPlanner {
    public static func preflight(
        segments: [SegmentPlacement], nodes: [NodeDescriptor], fault: Set<NodeID>, dataShards k: Int, margin: Int, listed: Int = 20
    ) -> DrillPreflight {
        let up = Set(nodes.filter(\.isUp).map(\.id))
        var result = DrillPreflight()
        var atRisk: [SegmentAtRisk] = []
        for segment in segments {
            let healthy = Set(segment.nodes.filter { up.contains($0) && !fault.contains($0) }).count
            result.segments += 1
            result.lowestHealthy = min(result.lowestHealthy ?? healthy, healthy)
            if healthy < k + margin {
                atRisk.append(SegmentAtRisk(objectId: segment.objectId, segment: segment.segment, healthy: healthy))
            }
        }
        result.atRiskCount = atRisk.count
        result.atRisk = Array(atRisk.sorted { ($0.healthy, $0.objectId, $0.segment) < ($1.healthy, $1.objectId, $1.segment) }.prefix(listed))
        return result
    }
}
