public import CoffreModel

/// Where each shard of a segment goes, and whether that breaks the policy.
public struct Placement: Hashable, Sendable, Codable {
    /// Node of shard i, for i in 0..<k+m.
    public let nodes: [NodeID]
    /// True when the topology could not satisfy the country rule and some country holds more
    /// than `shardsPerCountryMax` shards: the rebalancer pays this back later.
    public let placementDebt: Bool

    public init(nodes: [NodeID], placementDebt: Bool) {
        self.nodes = nodes
        self.placementDebt = placementDebt
    }
}

/// Chooses nodes for shards: the pure decision, with randomness passed in.
///
/// The rules, in order:
/// 1. only nodes that are up, outside excluded countries, not avoided, and with room;
/// 2. every shard on a distinct node;
/// 3. at most `shardsPerCountryMax` shards per country — if the topology cannot satisfy it,
///    place anyway on the least-used countries and record placement debt;
/// 4. among the allowed nodes, prefer regions holding fewest shards of this segment, then
///    pick at random weighted by free bytes.
///
/// Greedy is enough for rule 3: with T = sum over countries of min(eligible nodes, room under
/// the cap), each pick lowers T by exactly one, so if T >= shards needed at the start, greedy
/// never gets stuck.
public enum PlacementPlanner {
    /// Places all k + m shards of a new segment.
    public static func place(
        policy: PlacementPolicy, nodes: [NodeDescriptor], shardBytes: Int64,
        avoiding: Set<NodeID> = [], using random: inout some RandomNumberGenerator
    ) throws(PlacementError) -> Placement {
        try complete(policy: policy, nodes: nodes, fixed: [:], shardBytes: shardBytes, avoiding: avoiding, using: &random)
    }

    /// Places the shards missing from `fixed` (shard number -> node), keeping the others:
    /// the alternate for a failed write, and the target of a repair.
    public static func complete(
        policy: PlacementPolicy, nodes: [NodeDescriptor], fixed: [Int: NodeID], shardBytes: Int64,
        avoiding: Set<NodeID> = [], using random: inout some RandomNumberGenerator
    ) throws(PlacementError) -> Placement {
        let total = policy.erasure.totalShards
        guard nodes.count <= Limits.nodesMax else {
            throw PlacementError(.limitExceeded, "placement over \(nodes.count) nodes exceeds \(Limits.nodesMax)")
        }
        guard fixed.keys.allSatisfy({ (0..<total).contains($0) }), Set(fixed.values).count == fixed.count else {
            throw PlacementError(.invalidArgument, "fixed shards must have distinct nodes and numbers 0..<\(total)")
        }
        let byID = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var state = State()
        for node in fixed.values {
            guard let descriptor = byID[node] else {
                throw PlacementError(.invalidArgument, "fixed shard on unknown node \(node)")
            }
            state.take(descriptor)
        }
        let used = Set(fixed.values)
        var candidates = nodes.filter {
            $0.isUp && !policy.excludedCountries.contains($0.country) && !avoiding.contains($0.id)
                && !used.contains($0.id) && $0.freeBytes >= shardBytes
        }
        let missing = (0..<total).filter { fixed[$0] == nil }
        guard candidates.count >= missing.count else {
            throw PlacementError(.insufficientNodes, shortageMessage(policy: policy, nodes: nodes, missing: missing.count, eligible: candidates.count, shardBytes: shardBytes, avoiding: avoiding, used: used))
        }
        var assignment = fixed
        var debt = false
        for shard in missing {
            let cap = policy.shardsPerCountryMax
            var allowed = candidates.filter { state.countries[$0.country, default: 0] < cap }
            if allowed.isEmpty {
                // The topology cannot satisfy the rule: least-used countries, and debt.
                let least = candidates.map { state.countries[$0.country, default: 0] }.min()!
                allowed = candidates.filter { state.countries[$0.country, default: 0] == least }
                debt = true
            }
            let fewest = allowed.map { state.regions[$0.region, default: 0] }.min()!
            let chosen = weightedPick(allowed.filter { state.regions[$0.region, default: 0] == fewest }, using: &random)
            assignment[shard] = chosen.id
            state.take(chosen)
            candidates.removeAll { $0.id == chosen.id }
        }
        if !debt {
            debt = state.countries.values.contains { $0 > policy.shardsPerCountryMax }
        }
        return Placement(nodes: (0..<total).map { assignment[$0]! }, placementDebt: debt)
    }

    /// Policy violations of a placement under the current topology (empty when it is sound):
    /// what repair and the rebalancer look for.
    public static func violations(of placement: Placement, policy: PlacementPolicy, nodes: [NodeDescriptor]) -> [PlacementViolation] {
        let byID = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var result: [PlacementViolation] = []
        var seen: [NodeID: Int] = [:]
        var perCountry: [Country: Int] = [:]
        for (shard, node) in placement.nodes.enumerated() {
            if let other = seen[node] { result.append(.sharedNode(node, shards: [other, shard])) }
            seen[node] = shard
            guard let descriptor = byID[node] else {
                result.append(.unknownNode(node, shard: shard))
                continue
            }
            if policy.excludedCountries.contains(descriptor.country) {
                result.append(.excludedCountry(descriptor.country, shard: shard))
            }
            perCountry[descriptor.country, default: 0] += 1
        }
        for (country, count) in perCountry.sorted(by: { $0.key < $1.key }) where count > policy.shardsPerCountryMax {
            result.append(.countryOverLimit(country, shards: count, limit: policy.shardsPerCountryMax))
        }
        return result
    }

    // MARK: - Private

    private struct State {
        var countries: [Country: Int] = [:]
        var regions: [String: Int] = [:]

        mutating func take(_ node: NodeDescriptor) {
            countries[node.country, default: 0] += 1
            regions[node.region, default: 0] += 1
        }
    }

    /// A node at random, each weighted by its free bytes (plus one, so empty-weight ties
    /// still choose).
    private static func weightedPick(_ nodes: [NodeDescriptor], using random: inout some RandomNumberGenerator) -> NodeDescriptor {
        precondition(!nodes.isEmpty)
        // Sorted so that the same seed gives the same choice whatever the input order.
        let sorted = nodes.sorted { $0.id < $1.id }
        let weights = sorted.map { Double($0.freeBytes) + 1 }
        var target = Double.random(in: 0..<weights.reduce(0, +), using: &random)
        for (node, weight) in zip(sorted, weights) {
            if target < weight { return node }
            target -= weight
        }
        return sorted.last!
    }

    private static func shortageMessage(
        policy: PlacementPolicy, nodes: [NodeDescriptor], missing: Int, eligible: Int, shardBytes: Int64,
        avoiding: Set<NodeID>, used: Set<NodeID>
    ) -> String {
        let down = nodes.filter { !$0.isUp }.count
        let excluded = nodes.filter { $0.isUp && policy.excludedCountries.contains($0.country) }.count
        let full = nodes.filter { $0.isUp && !policy.excludedCountries.contains($0.country) && $0.freeBytes < shardBytes }.count
        return "\(policy.erasure) needs \(missing) more nodes, \(eligible) eligible of \(nodes.count) "
            + "(\(down) down, \(excluded) in excluded countries, \(full) without \(ByteCount(shardBytes)) free, "
            + "\(avoiding.count) avoided, \(used.count) already holding a shard)"
    }
}

/// One way a placement breaks its policy.
public enum PlacementViolation: Hashable, Sendable, CustomStringConvertible {
    case sharedNode(NodeID, shards: [Int])
    case unknownNode(NodeID, shard: Int)
    case excludedCountry(Country, shard: Int)
    case countryOverLimit(Country, shards: Int, limit: Int)

    public var description: String {
        switch self {
        case .sharedNode(let node, let shards): "shards \(shards) share node \(node)"
        case .unknownNode(let node, let shard): "shard \(shard) is on unknown node \(node)"
        case .excludedCountry(let country, let shard): "shard \(shard) is in excluded country \(country)"
        case .countryOverLimit(let country, let shards, let limit): "\(country) holds \(shards) shards, limit \(limit)"
        }
    }
}

/// An error from placement.
public struct PlacementError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
