import CoffreModel
import Placement
import Testing
import TestSupport

/// A cluster state for the rebalancer: nodes with used bytes that match the segments on them.
struct RebalanceWorld {
    var nodes: [NodeDescriptor]
    var segments: [SegmentPlacement]

    /// Three to five countries of two to four nodes of assorted capacities; the segments
    /// placed before the last country joined see only the others (skew), and some only the
    /// first two countries (debt, when they hold nine nodes).
    static func random(random: inout SeededGenerator) throws -> RebalanceWorld {
        let codes = Array(["FR", "DE", "CH", "NZ", "JP"].prefix(Int.random(in: 3...5, using: &random)))
        var nodes: [NodeDescriptor] = []
        for code in codes {
            for i in 0..<Int.random(in: 2...4, using: &random) {
                nodes.append(NodeDescriptor(
                    id: try NodeID("\(code.lowercased())-\(i)"), country: try Country(code), region: "\(code.lowercased())-r\(i % 2)",
                    capacityBytes: Int64.random(in: 40...120, using: &random) << 20))
            }
        }
        let policy = policy(6, 3)
        // Early segments see only some of the nodes (the others joined later: skew), and
        // some see too few countries (debt).
        var segments: [SegmentPlacement] = []
        for index in 0..<Int.random(in: 10...60, using: &random) {
            let early = index < 20
            var visible = early ? nodes.filter { $0.country != Country(unchecked: codes.last!) } : nodes
            if early && index % 7 == 0 { visible = nodes.filter { codes.prefix(2).contains($0.country.code) } }
            let shardBytes = Int64.random(in: 1...4, using: &random) << 20
            guard visible.count >= 9, let placement = try? PlacementPlanner.place(policy: policy, nodes: visible, shardBytes: shardBytes, using: &random)
            else { continue }
            segments.append(SegmentPlacement(objectId: "o\(index)", segment: 0, nodes: placement.nodes, shardBytes: shardBytes))
            for node in placement.nodes { nodes[nodes.firstIndex { $0.id == node }!].usedBytes += shardBytes }
        }
        return RebalanceWorld(nodes: nodes, segments: segments)
    }

    /// Applies one move, checking it is sound.
    mutating func apply(_ move: ShardMove, draining: Set<NodeID>, sourceLocation: SourceLocation = #_sourceLocation) {
        let index = segments.firstIndex { $0.objectId == move.objectId && $0.segment == move.segment }!
        #expect(segments[index].nodes[move.shard] == move.from, "\(move)", sourceLocation: sourceLocation)
        #expect(!segments[index].nodes.contains(move.to), "two shards of a segment on \(move.to)", sourceLocation: sourceLocation)
        let target = nodes.first { $0.id == move.to }!
        #expect(target.isUp && !draining.contains(move.to), "\(move)", sourceLocation: sourceLocation)
        #expect(target.freeBytes >= move.bytes, "\(move.to) has no room", sourceLocation: sourceLocation)
        segments[index].nodes[move.shard] = move.to
        nodes[nodes.firstIndex { $0.id == move.from }!].usedBytes -= move.bytes
        nodes[nodes.firstIndex { $0.id == move.to }!].usedBytes += move.bytes
    }

    func violations(_ segment: SegmentPlacement, _ policy: PlacementPolicy) -> Int {
        PlacementPlanner.violations(of: Placement(nodes: segment.nodes, placementDebt: false), policy: policy, nodes: nodes).count
    }

    var spread: Double {
        let use = nodes.filter(\.isUp).map { Double($0.usedBytes) / Double($0.capacityBytes) }
        return (use.max() ?? 0) - (use.min() ?? 0)
    }
}

extension Country {
    init(unchecked code: String) { self = try! Country(code) }
}

@Suite struct RebalancePlannerTests {
    @Test func plansAreSoundConvergeAndNeverTouchASegmentAtRisk() throws {
        let seed = SeededGenerator.seedFromEnvironment()
        print("[rebalance] seed \(seed) (replay with COFFRE_TEST_SEED=\(seed))")
        var random = SeededGenerator(seed: seed)
        for round in 0..<40 {
            var world = try RebalanceWorld.random(random: &random)
            // A node down (repair's business: its segments are left alone), one draining.
            let down = world.nodes.randomElement(using: &random)!.id
            world.nodes[world.nodes.firstIndex { $0.id == down }!].isUp = false
            let draining: Set<NodeID> = Bool.random(using: &random) ? [world.nodes.filter(\.isUp).randomElement(using: &random)!.id] : []
            let margin = Int.random(in: 0...2, using: &random)
            let planner = RebalancePlanner(policy: policy(6, 3), margin: margin, spread: 0.1)
            let context = "seed \(seed) round \(round)"
            let before = world
            let plan = planner.plan(segments: world.segments, nodes: world.nodes, draining: draining)
            let moved = Set(plan.moves.map(\.objectId))
            for segment in before.segments where moved.contains(segment.objectId) {
                let healthy = Set(segment.nodes.filter { $0 != down }).count
                #expect(healthy >= 6 + margin, "\(context): a segment with \(healthy) healthy shards moved")
            }
            for move in plan.moves { world.apply(move, draining: draining) }
            for (old, new) in zip(before.segments, world.segments) {
                let debtFromDrain = plan.moves.contains { $0.objectId == new.objectId && $0.reason == .drain }
                #expect(debtFromDrain || world.violations(new, policy(6, 3)) <= before.violations(old, policy(6, 3)), "\(context): \(new.objectId) got worse")
                #expect(!new.nodes.contains { draining.contains($0) } || plan.skipped.contains { $0.objectId == new.objectId }, "\(context): \(new.objectId) still on a draining node")
            }
            let again = planner.plan(segments: world.segments, nodes: world.nodes, draining: draining)
            #expect(again.moves.isEmpty, "\(context): a second plan moves \(again.moves.count) shards: \(again.moves.prefix(3))")
            if !plan.moves.isEmpty { #expect(plan.lowestHealthyDuringMoves.map { $0 >= 6 + margin } ?? false, "\(context)") }
        }
    }

    @Test func aDrainEmptiesTheNodeWithinThePolicy() throws {
        let nodes = topology(["FR", "DE", "CH", "NZ"], perCountry: 3)
        var random = SeededGenerator(seed: 3)
        var world = RebalanceWorld(nodes: nodes, segments: [])
        for index in 0..<30 {
            let placement = try PlacementPlanner.place(policy: policy(6, 3), nodes: world.nodes, shardBytes: 1 << 20, using: &random)
            world.segments.append(SegmentPlacement(objectId: "o\(index)", segment: 0, nodes: placement.nodes, shardBytes: 1 << 20))
            for node in placement.nodes { world.nodes[world.nodes.firstIndex { $0.id == node }!].usedBytes += 1 << 20 }
        }
        let victim = nodes[4].id
        let plan = RebalancePlanner(policy: policy(6, 3)).plan(segments: world.segments, nodes: world.nodes, draining: [victim])
        let drains = plan.moves.filter { $0.reason == .drain }
        #expect(drains.count == world.segments.filter { $0.nodes.contains(victim) }.count && !drains.isEmpty)
        for move in plan.moves { world.apply(move, draining: [victim]) }
        #expect(world.nodes.first { $0.id == victim }!.usedBytes == 0)
        #expect(world.segments.allSatisfy { world.violations($0, policy(6, 3)) == 0 })
        #expect(plan.skipped.isEmpty)
    }

    /// An owner's excluded countries (per segment, from its manifest): shards there move out,
    /// and no move of that segment goes there, while other segments may use the country.
    @Test func anOwnersExcludedCountryIsEmptiedOfItsSegmentsOnly() throws {
        let nodes = topology(["FR", "DE", "CH", "NZ"], perCountry: 3)
        var random = SeededGenerator(seed: 5)
        var world = RebalanceWorld(nodes: nodes, segments: [])
        let newZealand = Country(unchecked: "NZ")
        for index in 0..<30 {
            let placement = try PlacementPlanner.place(policy: policy(6, 3), nodes: world.nodes, shardBytes: 1 << 20, using: &random)
            world.segments.append(SegmentPlacement(
                objectId: "o\(index)", segment: 0, nodes: placement.nodes, shardBytes: 1 << 20, excluded: index % 2 == 0 ? [newZealand] : []))
            for node in placement.nodes { world.nodes[world.nodes.firstIndex { $0.id == node }!].usedBytes += 1 << 20 }
        }
        // Three nodes more in DE: room for what leaves New Zealand within the country rule.
        for i in 3..<6 {
            world.nodes.append(NodeDescriptor(id: try NodeID("de-\(i)"), country: Country(unchecked: "DE"), region: "de-r", capacityBytes: 1 << 30))
        }
        let inNZ = { (segment: SegmentPlacement) in segment.nodes.contains { $0.value.hasPrefix("nz-") } }
        #expect(world.segments.filter { !$0.excluded.isEmpty }.contains(where: inNZ), "the seed placed some excluded segments in NZ")
        let plan = RebalancePlanner(policy: policy(6, 3)).plan(segments: world.segments, nodes: world.nodes)
        for move in plan.moves {
            let segment = world.segments.first { $0.objectId == move.objectId }!
            #expect(segment.excluded.isEmpty || !move.to.value.hasPrefix("nz-"), "\(move) goes to an excluded country")
            world.apply(move, draining: [])
        }
        #expect(world.segments.filter { !$0.excluded.isEmpty }.allSatisfy { !inNZ($0) }, "excluded segments left NZ")
        #expect(world.segments.filter { $0.excluded.isEmpty }.contains(where: inNZ), "the others still use NZ")
        #expect(world.segments.allSatisfy { world.violations($0, policy(6, 3)) == 0 })
        let strict = try PlacementPolicy(erasure: try ErasurePolicy(dataShards: 6, parityShards: 3), excludedCountries: [Country(unchecked: "FR")])
        #expect(strict.excluding([newZealand]).excludedCountries == [Country(unchecked: "FR"), newZealand])
        #expect(strict.excluding([]) == strict)
    }

    @Test func debtIsPaidBackAndNewCountriesEvenOut() throws {
        // Placed while only FR (5 nodes) and DE (4) were there: every segment is over the
        // limit of three shards per country. Then CH and NZ join, empty.
        let all = topology(["FR"], perCountry: 5, capacity: 1 << 30) + topology(["DE"], perCountry: 4, capacity: 1 << 30)
            + topology(["CH", "NZ"], perCountry: 3, capacity: 1 << 30)
        let early = Array(all.prefix(9))
        var random = SeededGenerator(seed: 4)
        var world = RebalanceWorld(nodes: all, segments: [])
        for index in 0..<40 {
            let placement = try PlacementPlanner.place(policy: policy(6, 3), nodes: early, shardBytes: 4 << 20, using: &random)
            #expect(placement.placementDebt)
            world.segments.append(SegmentPlacement(objectId: "o\(index)", segment: 0, nodes: placement.nodes, shardBytes: 4 << 20))
            for node in placement.nodes { world.nodes[world.nodes.firstIndex { $0.id == node }!].usedBytes += 4 << 20 }
        }
        let planner = RebalancePlanner(policy: policy(6, 3), spread: 0.02)
        let plan = planner.plan(segments: world.segments, nodes: world.nodes)
        #expect(plan.moves.contains { $0.reason == .violation } && plan.moves.contains { $0.reason == .skew })
        #expect(plan.bytesByCountryPair.keys.allSatisfy { $0.hasSuffix(">CH") || $0.hasSuffix(">NZ") || $0.hasSuffix(">DE") || $0.hasSuffix(">FR") })
        for move in plan.moves { world.apply(move, draining: []) }
        #expect(world.segments.allSatisfy { world.violations($0, policy(6, 3)) == 0 }, "debt paid back")
        #expect(world.spread <= 0.02 + 4.0 / 1024, "utilisation within the spread (one shard of slack): \(world.spread)")
        #expect(planner.plan(segments: world.segments, nodes: world.nodes).moves.isEmpty)
    }
}

@Suite struct DrillPlannerTests {
    @Test func aCountrysLossIsAllowedUnlessAnotherNodeIsAlreadyDown() throws {
        var nodes = topology(["FR", "DE", "CH", "NZ"], perCountry: 3)
        var random = SeededGenerator(seed: 8)
        var segments: [SegmentPlacement] = []
        for index in 0..<40 {
            let placement = try PlacementPlanner.place(policy: policy(6, 3), nodes: nodes, shardBytes: 1 << 20, using: &random)
            segments.append(SegmentPlacement(objectId: "o\(index)", segment: 0, nodes: placement.nodes, shardBytes: 1 << 20))
        }
        let france = Set(nodes.filter { $0.country.code == "FR" }.map(\.id))
        let check = DrillPlanner.preflight(segments: segments, nodes: nodes, fault: france, dataShards: 6, margin: 0)
        #expect(check.allowed && check.segments == 40)
        // Brute force: the fewest shards outside France.
        #expect(check.lowestHealthy == segments.map { Set($0.nodes).subtracting(france).count }.min())
        let strict = DrillPlanner.preflight(segments: segments, nodes: nodes, fault: france, dataShards: 6, margin: 1)
        let withThreeInFrance = segments.filter { $0.nodes.filter { france.contains($0) }.count == 3 }
        #expect(strict.atRiskCount == withThreeInFrance.count && strict.allowed == withThreeInFrance.isEmpty)

        // A German node already down: segments with three shards in France and one on it fall to 5.
        let down = nodes.firstIndex { $0.country.code == "DE" }!
        nodes[down].isUp = false
        let worse = DrillPlanner.preflight(segments: segments, nodes: nodes, fault: france, dataShards: 6, margin: 0)
        let hit = withThreeInFrance.filter { $0.nodes.contains(nodes[down].id) }
        #expect(worse.atRiskCount == hit.count && worse.allowed == hit.isEmpty)
        #expect(worse.atRisk.allSatisfy { $0.healthy == 5 })
        if !hit.isEmpty { #expect(worse.lowestHealthy == 5) }
    }
}
