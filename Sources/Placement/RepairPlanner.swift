public import CoffreModel

/// A shard by its place in an object and the node holding the copy: what a read or a scrub
/// reports as suspect. The node matters: a report about a copy that repair has since moved
/// elsewhere says nothing about the new copy.
public struct ShardRef: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let objectId: String
    public let segment: Int
    public let shard: Int
    public let node: NodeID

    public init(objectId: String, segment: Int, shard: Int, node: NodeID) {
        self.objectId = objectId
        self.segment = segment
        self.shard = shard
        self.node = node
    }

    public static func < (a: ShardRef, b: ShardRef) -> Bool {
        (a.objectId, a.segment, a.shard, a.node) < (b.objectId, b.segment, b.shard, b.node)
    }
    public var description: String { "\(objectId)/\(segment)/\(shard) on \(node)" }
}

/// One segment to repair: which shards to rebuild, and how much at risk it is.
public struct RepairDirective: Hashable, Sendable, Codable {
    public let objectId: String
    public let segment: Int
    /// Shard numbers to rebuild: on condemned or unknown nodes, or found corrupt or missing.
    public let lost: [Int]
    /// Where the lost shards were, by shard (for per-country risk).
    public let lostNodes: [NodeID]
    /// Shards on nodes that are up and not suspect: the segment's margin right now.
    public let healthy: Int
    /// Placement violations of the segment as it stands (a second key of risk).
    public let violations: Int
    public let shardLength: Int
    /// k of the segment's policy: the bytes a repair reads are k shards.
    public let dataShards: Int
    /// The leader's epoch when the directive was made: a directive from an older epoch is
    /// never carried out (and the manifest swap is fenced on the leader's record anyway).
    public let epoch: Int64

    public init(
        objectId: String, segment: Int, lost: [Int], lostNodes: [NodeID] = [], healthy: Int, violations: Int, shardLength: Int,
        dataShards: Int, epoch: Int64
    ) {
        self.objectId = objectId
        self.segment = segment
        self.lost = lost
        self.lostNodes = lostNodes
        self.healthy = healthy
        self.violations = violations
        self.shardLength = shardLength
        self.dataShards = dataShards
        self.epoch = epoch
    }

    /// Bytes of shards it rebuilds: what repair's budget, rate and ETA count (k times as
    /// many are read to rebuild them).
    public var bytes: Int64 { Int64(shardLength) * Int64(lost.count) }
    /// Whether enough shards remain to rebuild from.
    public var isRepairable: Bool { healthy >= dataShards }
}

/// What `RepairPlanner.observe` saw change.
public enum NodeEvent: Hashable, Sendable {
    /// No coordinator has heard from the node for `down_after`.
    case down(NodeID)
    /// Down for longer than `repair_after`: its shards are lost, repair them elsewhere.
    case condemned(NodeID)
    /// Heard from again: its shards that were rebuilt elsewhere are garbage now.
    case returned(NodeID)
    /// Answers with another store than the one its placements refer to (a replaced or
    /// wiped disk): its shards are lost though it is up.
    case replaced(NodeID)
    /// Its new store is the one placements refer to now: it takes new shards again.
    case rejoined(NodeID)
}

/// Repair's decisions, with no I/O: which nodes are lost, which segments to rebuild, in
/// which order. Time (milliseconds since 1970) is an argument; the coordinator's repair
/// worker (the shell) feeds it observations and carries out its directives.
///
/// Shape from swift-cluster-membership's SWIM instance: a value whose mutating calls take an
/// event and return directives. Departure: liveness comes from the coordinators' merged
/// observations (a node is down when none has heard from it for `down_after`), not from
/// probes the planner schedules.
public struct RepairPlanner: Sendable {
    public let policy: PlacementPolicy
    /// Milliseconds a node stays down before its shards are rebuilt elsewhere.
    public let repairAfter: Int64
    /// The leader's epoch, stamped on every directive.
    public let epoch: Int64
    /// Down nodes, and since when.
    public private(set) var downSince: [NodeID: Int64] = [:]
    /// Nodes down for longer than `repairAfter`.
    public private(set) var condemned: Set<NodeID> = []
    /// Nodes that answer with another store than the one their placements refer to.
    public private(set) var replaced: Set<NodeID> = []

    /// Nodes whose shards are lost: condemned, or with a replaced store.
    public var lost: Set<NodeID> { condemned.union(replaced) }

    public init(policy: PlacementPolicy, repairAfter: Int64, epoch: Int64) {
        precondition(repairAfter >= 0)
        self.policy = policy
        self.repairAfter = repairAfter
        self.epoch = epoch
    }

    /// Takes the current liveness of every known node; returns what changed.
    ///
    /// - Parameter down: for each node, nil when it is up, or when it went down
    ///   (milliseconds since 1970: its last news plus `down_after`, so that the delay before
    ///   repair runs from the node's silence, not from when this leader first looked). A node
    ///   absent from `down` is forgotten (it left the membership). Events come sorted by node
    ///   id, so the same inputs give the same outputs.
    public mutating func observe(down: [NodeID: Int64?], now: Int64) -> [NodeEvent] {
        var events: [NodeEvent] = []
        for (node, wentDown) in down.sorted(by: { $0.key < $1.key }) {
            guard let wentDown else {
                if downSince.removeValue(forKey: node) != nil {
                    condemned.remove(node)
                    events.append(.returned(node))
                }
                continue
            }
            if downSince[node] == nil {
                downSince[node] = min(wentDown, now)
                events.append(.down(node))
            }
            if !condemned.contains(node), now - downSince[node]! >= repairAfter {
                condemned.insert(node)
                events.append(.condemned(node))
            }
        }
        for node in downSince.keys where down[node] == nil {
            downSince[node] = nil
            condemned.remove(node)
        }
        return events
    }

    /// Takes the nodes whose store is not the one their placements refer to; returns what
    /// changed, sorted by node.
    public mutating func observe(replaced nodes: Set<NodeID>) -> [NodeEvent] {
        let events = nodes.subtracting(replaced).sorted().map(NodeEvent.replaced) + replaced.subtracting(nodes).sorted().map(NodeEvent.rejoined)
        replaced = nodes
        return events
    }

    /// `observe(down:now:)` for callers that know only up or down: a down node went down now.
    public mutating func observe(up: [NodeID: Bool], now: Int64) -> [NodeEvent] {
        observe(down: up.mapValues { $0 ? nil : now }, now: now)
    }

    /// The directive for one segment, or nil when none of its shards is lost.
    ///
    /// - Parameters:
    ///   - nodes: the membership with liveness (a node not in it is unknown: its shards are lost).
    ///   - suspects: shards reported corrupt or missing (only this segment's are looked at).
    public func plan(
        objectId: String, policy erasure: ErasurePolicy, segment: SegmentManifest, nodes: [NodeDescriptor], suspects: Set<ShardRef>
    ) -> RepairDirective? {
        let byID = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var lost: [Int] = []
        var lostNodes: [NodeID] = []
        var healthy = 0
        for location in segment.shards {
            let suspect = suspects.contains(ShardRef(objectId: objectId, segment: segment.index, shard: location.index, node: location.node))
            let gone = condemned.contains(location.node) || replaced.contains(location.node)
            guard let node = byID[location.node], !gone, !suspect else {
                lost.append(location.index)
                lostNodes.append(location.node)
                continue
            }
            if node.isUp && downSince[location.node] == nil { healthy += 1 }
        }
        guard !lost.isEmpty else { return nil }
        let placement = Placement(nodes: segment.shards.map(\.node), placementDebt: segment.placementDebt)
        let violations = PlacementPlanner.violations(of: placement, policy: policy.forSegments(of: erasure), nodes: nodes).count
        return RepairDirective(
            objectId: objectId, segment: segment.index, lost: lost, lostNodes: lostNodes, healthy: healthy, violations: violations,
            shardLength: segment.shardLength, dataShards: erasure.dataShards, epoch: epoch)
    }

    /// Every directive for an object's manifest.
    public func plan(_ manifest: ObjectManifest, nodes: [NodeDescriptor], suspects: Set<ShardRef>) -> [RepairDirective] {
        manifest.segments.compactMap {
            plan(objectId: manifest.id, policy: manifest.erasure(of: $0), segment: $0, nodes: nodes, suspects: suspects)
        }
    }

    /// Risk order: fewest healthy shards first, then most placement violations, then most
    /// shards lost; ties by object and segment, so the order is total.
    public static func isRiskier(_ a: RepairDirective, than b: RepairDirective) -> Bool {
        if a.healthy != b.healthy { return a.healthy < b.healthy }
        if a.violations != b.violations { return a.violations > b.violations }
        if a.lost.count != b.lost.count { return a.lost.count > b.lost.count }
        return (a.objectId, a.segment) < (b.objectId, b.segment)
    }
}

/// The leader's queue of segments to repair: riskiest first, one entry per segment, bounded.
///
/// A segment planned again replaces its older entry (its risk may have changed). When full,
/// the least risky entry is dropped: the next scan finds it again.
public struct RepairQueue: Sendable {
    public let capacity: Int
    /// Kept sorted by risk, riskiest first.
    public private(set) var entries: [RepairDirective] = []

    public init(capacity: Int = Limits.repairQueueMax) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    /// Bytes to move for everything queued.
    public var bytes: Int64 { entries.reduce(0) { $0 + $1.bytes } }

    /// Adds or replaces the directive for its segment; false when dropped for room.
    @discardableResult
    public mutating func insert(_ directive: RepairDirective) -> Bool {
        entries.removeAll { $0.objectId == directive.objectId && $0.segment == directive.segment }
        let position = entries.firstIndex { RepairPlanner.isRiskier(directive, than: $0) } ?? entries.count
        guard position < capacity else { return false }
        entries.insert(directive, at: position)
        if entries.count > capacity { entries.removeLast() }
        return true
    }

    /// The riskiest directive that can be carried out now (enough healthy shards).
    public mutating func popRepairable() -> RepairDirective? {
        guard let index = entries.firstIndex(where: \.isRepairable) else { return nil }
        return entries.remove(at: index)
    }

    public mutating func removeAll() { entries.removeAll() }
}

extension Limits {
    /// Segments the leader keeps queued for repair; the rest is found again by the next scan.
    public static let repairQueueMax = 100_000
    /// Segments the leader repairs at once.
    public static let repairSegmentsInFlightMax = 8
}
