import CoffreModel
import Placement
import Testing
import TestSupport

/// A segment placed by the planner on `nodes`.
func placedSegment(index: Int, policy: PlacementPolicy, nodes: [NodeDescriptor], random: inout SeededGenerator) throws -> SegmentManifest {
    let placement = try PlacementPlanner.place(policy: policy, nodes: nodes, shardBytes: 1 << 20, using: &random)
    return SegmentManifest(
        index: index, length: 6 << 20, shardLength: 1 << 20,
        shards: placement.nodes.enumerated().map { ShardLocation(index: $0.offset, node: $0.element, checksum: 0) },
        placementDebt: placement.placementDebt)
}

@Suite struct RepairPlannerTests {
    let nodes = topology(["FR", "DE", "CH", "NZ"], perCountry: 3)

    @Test func aNodeIsCondemnedOnlyAfterRepairAfterAndForgivenWhenItReturns() {
        var planner = RepairPlanner(policy: policy(6, 3), repairAfter: 10_000, epoch: 1)
        let node = nodes[0].id
        var up = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, true) })
        #expect(planner.observe(up: up, now: 0).isEmpty)
        up[node] = false
        #expect(planner.observe(up: up, now: 1_000) == [.down(node)])
        #expect(planner.observe(up: up, now: 10_999).isEmpty)
        #expect(planner.observe(up: up, now: 11_000) == [.condemned(node)])
        #expect(planner.condemned == [node])
        #expect(planner.observe(up: up, now: 20_000).isEmpty)
        up[node] = true
        #expect(planner.observe(up: up, now: 21_000) == [.returned(node)])
        #expect(planner.condemned.isEmpty && planner.downSince.isEmpty)
    }

    @Test func aNodeBackWithAnotherStoreLosesItsShardsThoughItIsUp() throws {
        var random = SeededGenerator(seed: 6)
        let segment = try placedSegment(index: 0, policy: policy(6, 3), nodes: nodes, random: &random)
        var planner = RepairPlanner(policy: policy(6, 3), repairAfter: 60_000, epoch: 2)
        let wiped = segment.shards[3].node
        let up = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, true) })
        #expect(planner.observe(up: up, now: 0).isEmpty)
        #expect(planner.plan(objectId: "o", policy: policy(6, 3).erasure, segment: segment, nodes: nodes, suspects: []) == nil)
        #expect(planner.observe(replaced: [wiped]) == [.replaced(wiped)])
        #expect(planner.observe(replaced: [wiped]).isEmpty)
        #expect(planner.lost == [wiped] && planner.condemned.isEmpty)
        let directive = try #require(planner.plan(objectId: "o", policy: policy(6, 3).erasure, segment: segment, nodes: nodes, suspects: []))
        #expect(directive.lost == [3] && directive.lostNodes == [wiped] && directive.healthy == 8)
        #expect(planner.observe(replaced: []) == [.rejoined(wiped)])
        #expect(planner.plan(objectId: "o", policy: policy(6, 3).erasure, segment: segment, nodes: nodes, suspects: []) == nil)
    }

    @Test func onlyShardsOnLostNodesOrSuspectAreRebuilt() throws {
        var random = SeededGenerator(seed: 5)
        let segment = try placedSegment(index: 0, policy: policy(6, 3), nodes: nodes, random: &random)
        var planner = RepairPlanner(policy: policy(6, 3), repairAfter: 0, epoch: 7)
        let lostNode = segment.shards[2].node
        let slowNode = segment.shards[4].node
        var up = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, true) })
        up[lostNode] = false
        _ = planner.observe(up: up, now: 0)
        #expect(planner.plan(objectId: "o", policy: policy(6, 3).erasure, segment: segment, nodes: nodes, suspects: []) != nil)
        let suspects: Set = [
            ShardRef(objectId: "o", segment: 0, shard: 7, node: segment.shards[7].node),
            // A report about a copy that is no longer where the manifest says: ignored.
            ShardRef(objectId: "o", segment: 0, shard: 5, node: segment.shards[6].node),
        ]
        let descriptors = nodes.map { node in
            var node = node
            node.isUp = node.id != lostNode && node.id != slowNode
            return node
        }
        let directive = try #require(planner.plan(objectId: "o", policy: policy(6, 3).erasure, segment: segment, nodes: descriptors, suspects: suspects))
        #expect(directive.lost == [2, 7])
        // The slow node's shard is neither lost nor healthy: 9 - 2 lost - 1 unreachable.
        #expect(directive.healthy == 6)
        #expect(directive.epoch == 7)
        #expect(directive.bytes == Int64(1 << 20) * 2)
        // Nothing lost: no directive.
        let clean = RepairPlanner(policy: policy(6, 3), repairAfter: 0, epoch: 1)
        #expect(clean.plan(objectId: "o", policy: policy(6, 3).erasure, segment: segment, nodes: nodes, suspects: []) == nil)
    }

    @Test func theQueueServesTheRiskiestRepairableSegmentFirst() {
        func directive(_ id: String, healthy: Int, violations: Int = 0) -> RepairDirective {
            RepairDirective(objectId: id, segment: 0, lost: [0], healthy: healthy, violations: violations, shardLength: 10, dataShards: 6, epoch: 1)
        }
        var queue = RepairQueue(capacity: 3)
        queue.insert(directive("a", healthy: 8))
        queue.insert(directive("b", healthy: 5))
        queue.insert(directive("c", healthy: 7, violations: 1))
        queue.insert(directive("d", healthy: 7))
        // Full: the least risky ("a", 8 healthy) made room.
        #expect(queue.entries.map(\.objectId) == ["b", "c", "d"])
        // "b" cannot be rebuilt now (5 < k = 6): the next riskiest goes first.
        #expect(queue.popRepairable()?.objectId == "c")
        // Planned again: replaced, not doubled.
        queue.insert(directive("d", healthy: 6))
        #expect(queue.count == 2)
        #expect(queue.popRepairable()?.objectId == "d")
        #expect(queue.popRepairable() == nil)
        #expect(queue.count == 1)
    }

    /// Random topologies, manifests and failure sets: the planner names exactly the shards
    /// on lost, unknown or suspect places; its order is by risk; and completing each plan
    /// with `PlacementPlanner.complete` gives k + m shards on distinct nodes that are up,
    /// none of them lost, within the country rule whenever the topology allows it.
    @Test func propertiesOverRandomTopologiesAndFailures() throws {
        let seed = SeededGenerator.seedFromEnvironment()
        var random = SeededGenerator(seed: seed)
        let codes = ["FR", "DE", "CH", "NZ", "JP", "CA"]
        for round in 0..<300 {
            let k = Int.random(in: 2...8, using: &random)
            let m = Int.random(in: 1...4, using: &random)
            let chosen = Array(codes.shuffled(using: &random).prefix(Int.random(in: 2...codes.count, using: &random)))
            let nodes = topology(chosen, perCountry: Int.random(in: 2...5, using: &random), regions: 2)
            guard nodes.count >= k + m + 2 else { continue }
            let rules = policy(k, m)
            var segments: [SegmentManifest] = []
            for index in 0..<5 { segments.append(try placedSegment(index: index, policy: rules, nodes: nodes, random: &random)) }
            let failed = Set(nodes.shuffled(using: &random).prefix(Int.random(in: 0...2, using: &random)).map(\.id))
            var planner = RepairPlanner(policy: rules, repairAfter: 0, epoch: Int64(round))
            _ = planner.observe(up: Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, !failed.contains($0.id)) }), now: 0)
            let live = nodes.map { node in
                var node = node
                node.isUp = !failed.contains(node.id)
                return node
            }
            var suspects = Set<ShardRef>()
            if Bool.random(using: &random) {
                let segment = segments[Int.random(in: 0..<5, using: &random)]
                let shard = Int.random(in: 0..<(k + m), using: &random)
                suspects.insert(ShardRef(objectId: "o", segment: segment.index, shard: shard, node: segment.shards[shard].node))
            }
            let manifest = ObjectManifest(id: "o", owner: "a", length: 0, segmentSize: 1, policy: rules.erasure, segments: segments, createdAt: 0)
            let directives = planner.plan(manifest, nodes: live, suspects: suspects).sorted(by: RepairPlanner.isRiskier)
            for segment in segments {
                let expected = segment.shards.filter {
                    failed.contains($0.node) || suspects.contains(ShardRef(objectId: "o", segment: segment.index, shard: $0.index, node: $0.node))
                }.map(\.index)
                let directive = directives.first { $0.segment == segment.index }
                #expect(directive?.lost ?? [] == expected, "seed \(seed) round \(round)")
                guard let directive else { continue }
                #expect(directive.healthy == k + m - expected.count, "seed \(seed) round \(round)")
                var fixed: [Int: NodeID] = [:]
                for location in segment.shards where !directive.lost.contains(location.index) { fixed[location.index] = location.node }
                let avoid = failed.union(directive.lost.map { segment.shards[$0].node })
                guard let repaired = try? PlacementPlanner.complete(policy: rules, nodes: live, fixed: fixed, shardBytes: 1 << 20, avoiding: avoid, using: &random) else {
                    // Only when too few nodes remain outside the segment and the avoided ones.
                    #expect(live.filter { $0.isUp && !avoid.contains($0.id) && !fixed.values.contains($0.id) }.count < directive.lost.count, "seed \(seed) round \(round)")
                    continue
                }
                #expect(Set(repaired.nodes).count == k + m, "seed \(seed) round \(round)")
                for shard in directive.lost {
                    #expect(!avoid.contains(repaired.nodes[shard]), "seed \(seed) round \(round)")
                    #expect(live.first { $0.id == repaired.nodes[shard] }!.isUp, "seed \(seed) round \(round)")
                }
                for (shard, node) in fixed { #expect(repaired.nodes[shard] == node, "seed \(seed) round \(round)") }
                if !repaired.placementDebt {
                    #expect(PlacementPlanner.violations(of: repaired, policy: rules, nodes: live).isEmpty, "seed \(seed) round \(round)")
                }
            }
            for (a, b) in zip(directives, directives.dropFirst()) {
                #expect(!RepairPlanner.isRiskier(b, than: a), "seed \(seed) round \(round)")
                #expect(a.healthy <= b.healthy, "seed \(seed) round \(round)")
            }
        }
    }

    @Test func thePacerHoldsTheBudgetAndFollowsAChange() {
        var pacer = Pacer(bytesPerSecond: 100, burstBytes: 100)
        #expect(pacer.spend(100, now: 0) == 0)
        // The bucket is empty: 50 bytes wait half a second.
        #expect(pacer.spend(50, now: 0) == 500_000_000)
        // A second later 100 bytes were refilled, 50 of them owed.
        #expect(pacer.spend(50, now: 1_000_000_000) == 0)
        pacer.setBudget(1000, now: 1_000_000_000)
        #expect(pacer.spend(500, now: 1_000_000_000) == 500_000_000)
        pacer.setBudget(0, now: 2_000_000_000)
        #expect(pacer.spend(1, now: 2_000_000_000) == 1_000_000_000)
        var meter = RateMeter(windowSeconds: 10)
        meter.record(1000, now: 0)
        meter.record(1000, now: 5_000_000_000)
        #expect(meter.rate(now: 5_000_000_000) == 200)
        #expect(meter.rate(now: 12_000_000_000) == 100)
    }
}

@Suite struct CountryStateTests {
    @Test func aCountryGoesDownThenQuarantinedThenEvacuatedAndComesBack() throws {
        let fr = try Country("FR")
        let de = try Country("DE")
        var states = CountryStates(downFraction: 0.5, quarantineAfter: 10_000)
        func step(_ frUp: Int, emptied: Set<Country> = [], at now: Int64) -> [CountryState] {
            states.observe(nodes: [fr: (frUp, 3), de: (3, 3)], emptied: emptied, now: now).filter { $0.country == fr }.map(\.to)
        }
        #expect(step(3, at: 0).isEmpty)
        #expect(step(2, at: 1_000).isEmpty, "one node of three is not the country")
        #expect(step(1, at: 2_000) == [.down])
        #expect(step(0, at: 11_999).isEmpty)
        #expect(step(0, at: 12_000) == [.quarantined])
        #expect(states.quarantined == [fr])
        #expect(step(0, at: 13_000).isEmpty, "not evacuated while its nodes still hold shards")
        #expect(step(0, emptied: [fr], at: 14_000) == [.evacuated])
        #expect(states.entries[fr]?.downSince == 2_000)
        #expect(step(3, at: 20_000) == [.up])
        #expect(states.quarantined.isEmpty && states.entries[de]?.state == .up)
    }
}
