public import CoffreModel

/// Where one segment's shards are, as the rebalancer sees it.
public struct SegmentPlacement: Hashable, Sendable {
    public let objectId: String
    public let segment: Int
    /// Node of shard i.
    public var nodes: [NodeID]
    /// Bytes of one shard.
    public let shardBytes: Int64
    /// Countries its object's owner excluded, besides the policy's.
    public let excluded: Set<Country>

    public init(objectId: String, segment: Int, nodes: [NodeID], shardBytes: Int64, excluded: Set<Country> = []) {
        self.objectId = objectId
        self.segment = segment
        self.nodes = nodes
        self.shardBytes = shardBytes
        self.excluded = excluded
    }
}

/// Why a shard moves.
public enum MoveReason: String, Hashable, Sendable, Codable {
    /// Its node is being drained, or its country excluded.
    case drain
    /// Its segment breaks the placement policy (two shards on a node, a country over its
    /// limit): placement debt paid back.
    case violation
    /// Its node is fuller than the others by more than the allowed spread.
    case skew
}

/// One shard to copy to another node, verify, swap into the manifest, and delete from its
/// source after the grace.
public struct ShardMove: Hashable, Sendable, Codable {
    public let objectId: String
    public let segment: Int
    public let shard: Int
    public let from: NodeID
    public let to: NodeID
    public let bytes: Int64
    public let reason: MoveReason
}

/// A segment the planner left alone, and why.
public struct SkippedSegment: Hashable, Sendable, Codable {
    public let objectId: String
    public let segment: Int
    public let reason: String
}

/// What a rebalance would do: the moves in order, and what an operator weighs before running it.
public struct RebalancePlan: Hashable, Sendable {
    public var moves: [ShardMove] = []
    public var skipped: [SkippedSegment] = []
    /// Bytes moved from one country to another, keyed "FR>DE".
    public var bytesByCountryPair: [String: Int64] = [:]
    /// The fewest healthy shards any segment that moves has while its moves run (a move copies
    /// before it swaps and deletes, so a segment never has fewer than before); nil: no move.
    public var lowestHealthyDuringMoves: Int?

    public var totalBytes: Int64 { moves.reduce(0) { $0 + $1.bytes } }

    /// Seconds to copy everything at `budget` bytes per second.
    public func estimatedSeconds(budget: Int64) -> Double { budget > 0 ? Double(totalBytes) / Double(budget) : .infinity }
}

/// Computes shard moves with no I/O: draining nodes and excluded countries, placement
/// violations (debt), and capacity skew. One planner for dry runs (`rebalance plan`, what-if)
/// and real runs.
///
/// The rules:
/// - a segment with fewer than k + `margin` healthy shards (on nodes that are up) is repair's,
///   not the rebalancer's: skipped;
/// - a target is up, not draining, outside excluded countries, has room for the shard after
///   the moves planned before it, and holds no shard of the segment;
/// - a move never adds a violation, except a drain that has nowhere within the country rule
///   to go (it goes to the least-used country, as placement does, and leaves debt);
/// - skew moves go from the fullest node (by used/capacity) to the emptiest that can take the
///   shard without ending fuller than the source: each lowers the sum over nodes of
///   used²/capacity, so the plan ends, and planning again on its result finds nothing.
///
/// Deterministic: segments in (object, segment) order, ties broken by node id.
public struct RebalancePlanner: Sendable {
    public let policy: PlacementPolicy
    /// Healthy shards beyond k a segment needs before any of its shards moves.
    public let margin: Int
    /// Utilisation spread (fullest minus emptiest, as a fraction of capacity) left alone.
    public let spread: Double

    public init(policy: PlacementPolicy, margin: Int = 1, spread: Double = 0.05) {
        precondition(margin >= 0 && spread >= 0)
        self.policy = policy
        self.margin = margin
        self.spread = spread
    }

    /// Plans moves for `segments` over `nodes`; `draining` nodes are emptied.
    public func plan(
        segments: [SegmentPlacement], nodes: [NodeDescriptor], draining: Set<NodeID> = [], maxMoves: Int = .max
    ) -> RebalancePlan {
        var state = State(nodes: nodes, draining: draining, policy: policy)
        var placed = segments.sorted { ($0.objectId, $0.segment) < ($1.objectId, $1.segment) }
        var plan = RebalancePlan()
        var movedHealthy: [Int] = []
        let k = policy.erasure.dataShards
        var onNode: [NodeID: [Int]] = [:]
        for (index, segment) in placed.enumerated() {
            for node in segment.nodes { onNode[node, default: []].append(index) }
        }
        func move(_ index: Int, shard: Int, to target: NodeID, reason: MoveReason) {
            let source = placed[index].nodes[shard]
            movedHealthy.append(state.healthy(placed[index]))
            plan.moves.append(state.move(&placed[index], shard: shard, to: target, reason: reason))
            if let at = onNode[source]?.firstIndex(of: index) { onNode[source]!.remove(at: at) }
            onNode[target, default: []].append(index)
        }

        // Passes until nothing moves: a drain or a violation that found no room may find it
        // once skew moves have made some.
        var moving = true
        while moving && plan.moves.count < maxMoves {
            moving = false
            plan.skipped = []
            // Drains and violations, segment by segment.
            for index in placed.indices where plan.moves.count < maxMoves {
                let wanted = shardsToMove(placed[index], state)
                guard !wanted.isEmpty else { continue }
                let healthy = state.healthy(placed[index])
                guard healthy >= k + margin else {
                    plan.skipped.append(.init(objectId: placed[index].objectId, segment: placed[index].segment, reason: "\(healthy) healthy shards, under k + \(margin): repair first"))
                    continue
                }
                for (shard, reason) in wanted where plan.moves.count < maxMoves {
                    guard let target = state.target(for: placed[index], shard: shard, allowDebt: reason == .drain) else {
                        plan.skipped.append(.init(objectId: placed[index].objectId, segment: placed[index].segment, reason: "shard \(shard): no node can take it within the policy"))
                        continue
                    }
                    move(index, shard: shard, to: target, reason: reason)
                    moving = true
                }
            }
            // Skew: fullest to emptiest while the spread is too wide and a move helps.
            while plan.moves.count < maxMoves, let next = state.skewMove(placed, onNode: onNode, spread: spread, minimumHealthy: k + margin) {
                move(next.0, shard: next.1, to: next.2, reason: .skew)
                moving = true
            }
        }

        for move in plan.moves {
            let pair = "\(state.byID[move.from]?.country.code ?? "?")>\(state.byID[move.to]?.country.code ?? "?")"
            plan.bytesByCountryPair[pair, default: 0] += move.bytes
        }
        plan.lowestHealthyDuringMoves = movedHealthy.min()
        return plan
    }

    /// The shards of a segment that must move, and why, in shard order: on a draining node
    /// or in a country the policy or the object's owner excludes; the second and later shards on one node; a country's shards
    /// beyond its limit (its highest-numbered ones).
    private func shardsToMove(_ segment: SegmentPlacement, _ state: State) -> [(Int, MoveReason)] {
        var wanted: [Int: MoveReason] = [:]
        var seen = Set<NodeID>()
        var perCountry: [Country: [Int]] = [:]
        for (shard, node) in segment.nodes.enumerated() {
            guard let descriptor = state.byID[node], descriptor.isUp else { continue }  // repair's
            if state.draining.contains(node) || policy.excludedCountries.contains(descriptor.country) || segment.excluded.contains(descriptor.country) {
                wanted[shard] = .drain
                continue
            }
            if !seen.insert(node).inserted {
                wanted[shard] = .violation
                continue
            }
            perCountry[descriptor.country, default: []].append(shard)
        }
        for shards in perCountry.values where shards.count > policy.shardsPerCountryMax {
            for shard in shards.suffix(shards.count - policy.shardsPerCountryMax) { wanted[shard] = .violation }
        }
        return wanted.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Nodes as the plan leaves them so far.
    private struct State {
        var byID: [NodeID: NodeDescriptor]
        let draining: Set<NodeID>
        let policy: PlacementPolicy
        /// Candidate targets, sorted by id.
        let eligible: [NodeID]

        init(nodes: [NodeDescriptor], draining: Set<NodeID>, policy: PlacementPolicy) {
            byID = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            self.draining = draining
            self.policy = policy
            eligible = nodes.filter { $0.isUp && !draining.contains($0.id) && !policy.excludedCountries.contains($0.country) && $0.capacityBytes > 0 }
                .map(\.id).sorted()
        }

        func healthy(_ segment: SegmentPlacement) -> Int {
            Set(segment.nodes.filter { byID[$0]?.isUp == true }).count
        }

        func utilisation(_ node: NodeID) -> Double {
            guard let descriptor = byID[node], descriptor.capacityBytes > 0 else { return 1 }
            return Double(descriptor.usedBytes) / Double(descriptor.capacityBytes)
        }

        /// Shards of the segment per country, without shard `except`.
        func countries(_ segment: SegmentPlacement, except: Int) -> [Country: Int] {
            var counts: [Country: Int] = [:]
            for (shard, node) in segment.nodes.enumerated() where shard != except {
                if let country = byID[node]?.country { counts[country, default: 0] += 1 }
            }
            return counts
        }

        /// Whether `node` can take shard `shard` of the segment: room, not holding one, and
        /// (unless `allowDebt`) its country under the limit.
        func accepts(_ node: NodeID, _ segment: SegmentPlacement, shard: Int, counts: [Country: Int], allowDebt: Bool) -> Bool {
            guard let descriptor = byID[node], !segment.nodes.contains(node), descriptor.freeBytes >= segment.shardBytes,
                !segment.excluded.contains(descriptor.country)
            else { return false }
            return allowDebt || counts[descriptor.country, default: 0] < policy.shardsPerCountryMax
        }

        /// The emptiest node that can take the shard within the country rule; with
        /// `allowDebt`, failing that, the emptiest in the least-used country.
        func target(for segment: SegmentPlacement, shard: Int, allowDebt: Bool) -> NodeID? {
            let counts = countries(segment, except: shard)
            let byEmptiness = eligible.sorted { (utilisation($0), $0) < (utilisation($1), $1) }
            if let node = byEmptiness.first(where: { accepts($0, segment, shard: shard, counts: counts, allowDebt: false) }) { return node }
            guard allowDebt else { return nil }
            let open = byEmptiness.filter { accepts($0, segment, shard: shard, counts: counts, allowDebt: true) }
            let least = open.map { counts[byID[$0]!.country, default: 0] }.min()
            return open.first { counts[byID[$0]!.country, default: 0] == least }
        }

        /// The next skew move: from the fullest node that has one, to the emptiest node that
        /// can take it and does not end fuller than the source.
        func skewMove(_ placed: [SegmentPlacement], onNode: [NodeID: [Int]], spread: Double, minimumHealthy: Int) -> (Int, Int, NodeID)? {
            let byFullness = eligible.sorted { (utilisation($1), $0) < (utilisation($0), $1) }
            guard let fullest = byFullness.first, let emptiest = byFullness.last,
                utilisation(fullest) - utilisation(emptiest) > spread
            else { return nil }
            let targets = Array(byFullness.reversed())
            for source in byFullness {
                let sourceUse = utilisation(source)
                guard sourceUse - utilisation(emptiest) > spread else { break }
                for index in (onNode[source] ?? []).sorted(by: { (placed[$0].objectId, placed[$0].segment) < (placed[$1].objectId, placed[$1].segment) }) {
                    let segment = placed[index]
                    guard healthy(segment) >= minimumHealthy, let shard = segment.nodes.firstIndex(of: source) else { continue }
                    let counts = countries(segment, except: shard)
                    let sourceCountry = byID[source]!.country
                    let b = Double(segment.shardBytes)
                    for target in targets where target != source {
                        let descriptor = byID[target]!
                        guard utilisation(target) < sourceUse else { break }
                        // No overshoot: the source stays at least as full as the target.
                        let sourceAfter = (Double(byID[source]!.usedBytes) - b) / Double(byID[source]!.capacityBytes)
                        let targetAfter = (Double(descriptor.usedBytes) + b) / Double(descriptor.capacityBytes)
                        guard sourceAfter >= targetAfter else { continue }
                        let withinRule = descriptor.country == sourceCountry || counts[descriptor.country, default: 0] < policy.shardsPerCountryMax
                        if withinRule, accepts(target, segment, shard: shard, counts: counts, allowDebt: true) { return (index, shard, target) }
                    }
                }
            }
            return nil
        }

        /// Records a move: the segment's shard changes node, bytes move between the nodes.
        mutating func move(_ segment: inout SegmentPlacement, shard: Int, to target: NodeID, reason: MoveReason) -> ShardMove {
            let source = segment.nodes[shard]
            byID[source]?.usedBytes -= segment.shardBytes
            byID[target]?.usedBytes += segment.shardBytes
            segment.nodes[shard] = target
            return ShardMove(objectId: segment.objectId, segment: segment.segment, shard: shard, from: source, to: target, bytes: segment.shardBytes, reason: reason)
        }
    }
}
