import CoffreModel
import Placement
import Testing
import TestSupport

/// A topology: `perCountry` nodes in each country, spread over `regions` regions each.
func topology(_ countries: [String], perCountry: Int, regions: Int = 1, capacity: Int64 = 1 << 40) -> [NodeDescriptor] {
    countries.flatMap { code in
        (0..<perCountry).map { i in
            NodeDescriptor(
                id: try! NodeID("\(code.lowercased())-\(i)"), country: try! Country(code),
                region: "\(code.lowercased())-r\(i % regions)", capacityBytes: capacity)
        }
    }
}

func policy(_ k: Int, _ m: Int, margin: Int = 0, excluding: [String] = []) -> PlacementPolicy {
    try! PlacementPolicy(
        erasure: ErasurePolicy(dataShards: k, parityShards: m), margin: margin,
        excludedCountries: Set(excluding.map { try! Country($0) }))
}

func countries(_ placement: Placement, _ nodes: [NodeDescriptor]) -> [Country: Int] {
    let byID = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.country) })
    return placement.nodes.reduce(into: [:]) { $0[byID[$1]!, default: 0] += 1 }
}

@Suite struct PlacementTests {
    @Test func devTopologyRS6x3KeepsEachCountryUnderThreeShards() throws {
        let nodes = topology(["FR", "DE", "CH", "NZ"], perCountry: 3)
        var random = SeededGenerator(seed: 1)
        for _ in 0..<200 {
            let placement = try PlacementPlanner.place(policy: policy(6, 3), nodes: nodes, shardBytes: 1 << 20, using: &random)
            #expect(Set(placement.nodes).count == 9)
            #expect(countries(placement, nodes).values.allSatisfy { $0 <= 3 })
            #expect(!placement.placementDebt)
            #expect(PlacementPlanner.violations(of: placement, policy: policy(6, 3), nodes: nodes).isEmpty)
        }
    }

    @Test func randomTopologiesNeverBreakTheRulesSilently() throws {
        let seed = SeededGenerator.seedFromEnvironment()
        var random = SeededGenerator(seed: seed)
        let codes = ["FR", "DE", "CH", "NZ", "JP", "CA", "IS"]
        for round in 0..<300 {
            let k = Int.random(in: 1...10, using: &random)
            let m = Int.random(in: 1...6, using: &random)
            let margin = Int.random(in: 0..<m, using: &random)
            let chosen = Array(codes.shuffled(using: &random).prefix(Int.random(in: 1...codes.count, using: &random)))
            var nodes = topology(chosen, perCountry: Int.random(in: 1...5, using: &random), regions: 2)
            for i in nodes.indices {
                nodes[i].isUp = Int.random(in: 0..<10, using: &random) > 0
                nodes[i].usedBytes = Int64.random(in: 0...(1 << 40), using: &random)
            }
            let excluded = chosen.count > 1 && Bool.random(using: &random) ? [chosen[0]] : []
            let thePolicy = policy(k, m, margin: margin, excluding: excluded)
            let context = "seed \(seed) round \(round): RS(\(k),\(m)) margin \(margin) over \(chosen) excluding \(excluded)"
            do {
                let placement = try PlacementPlanner.place(policy: thePolicy, nodes: nodes, shardBytes: 1 << 20, using: &random)
                let violations = PlacementPlanner.violations(of: placement, policy: thePolicy, nodes: nodes)
                #expect(placement.nodes.count == k + m, "\(context)")
                #expect(Set(placement.nodes).count == k + m, "\(context)")
                // Only the country rule may be broken, and only when it is flagged as debt.
                #expect(violations.allSatisfy { if case .countryOverLimit = $0 { return true } else { return false } }, "\(context): \(violations)")
                #expect(placement.placementDebt == !violations.isEmpty, "\(context)")
                let byID = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0) })
                #expect(placement.nodes.allSatisfy { byID[$0]!.isUp && byID[$0]!.freeBytes >= 1 << 20 }, "\(context)")
                if placement.placementDebt {
                    // Debt only when no sound placement exists.
                    let room = Dictionary(grouping: nodes.filter { $0.isUp && !excluded.contains($0.country.code) && $0.freeBytes >= 1 << 20 }, by: \.country)
                        .values.map { min($0.count, thePolicy.shardsPerCountryMax) }.reduce(0, +)
                    #expect(room < k + m, "\(context): debt although \(room) sound slots exist")
                }
            } catch {
                #expect(error.code == .insufficientNodes, "\(context)")
            }
        }
    }

    @Test func excludedCountriesHoldNothing() throws {
        let nodes = topology(["FR", "DE", "CH", "NZ", "US"], perCountry: 3)
        var random = SeededGenerator(seed: 2)
        for _ in 0..<100 {
            let placement = try PlacementPlanner.place(policy: policy(6, 3, excluding: ["US"]), nodes: nodes, shardBytes: 1, using: &random)
            #expect(countries(placement, nodes)[try Country("US")] == nil)
        }
    }

    @Test func aCountryOutageGivesPlacementDebtNotFailure() throws {
        // DE is down: 3 countries x 3 nodes = 9 nodes, 3 per country: exactly sound.
        var nodes = topology(["FR", "DE", "CH", "NZ"], perCountry: 3)
        for i in nodes.indices where nodes[i].country.code == "DE" { nodes[i].isUp = false }
        var random = SeededGenerator(seed: 3)
        let sound = try PlacementPlanner.place(policy: policy(6, 3), nodes: nodes, shardBytes: 1, using: &random)
        #expect(!sound.placementDebt)
        // Two countries down: 6 nodes left, RS(4,2) needs 6 with at most 2 per country: debt.
        for i in nodes.indices where nodes[i].country.code == "CH" { nodes[i].isUp = false }
        let indebted = try PlacementPlanner.place(policy: policy(4, 2), nodes: nodes, shardBytes: 1, using: &random)
        #expect(indebted.placementDebt)
        #expect(Set(indebted.nodes).count == 6)
        #expect(countries(indebted, nodes).values.sorted() == [3, 3])
    }

    @Test func tooFewNodesIsAClearError() throws {
        var nodes = topology(["FR", "DE"], perCountry: 3)
        nodes[0].isUp = false
        var random = SeededGenerator(seed: 4)
        #expect {
            try PlacementPlanner.place(policy: policy(6, 3), nodes: nodes, shardBytes: 1, using: &random)
        } throws: { error in
            let error = error as! PlacementError
            return error.code == .insufficientNodes && error.message.contains("needs 9 more nodes, 5 eligible") && error.message.contains("1 down")
        }
    }

    @Test func completeKeepsFixedShardsAndAvoidsFailedNodes() throws {
        let nodes = topology(["FR", "DE", "CH", "NZ"], perCountry: 3)
        var random = SeededGenerator(seed: 5)
        let first = try PlacementPlanner.place(policy: policy(6, 3), nodes: nodes, shardBytes: 1, using: &random)
        // Shard 4's node failed during the write: find an alternate, keep the rest.
        var fixed = Dictionary(uniqueKeysWithValues: first.nodes.enumerated().map { ($0.offset, $0.element) })
        let failed = fixed.removeValue(forKey: 4)!
        let retry = try PlacementPlanner.complete(policy: policy(6, 3), nodes: nodes, fixed: fixed, shardBytes: 1, avoiding: [failed], using: &random)
        #expect(retry.nodes[4] != failed)
        for (shard, node) in fixed { #expect(retry.nodes[shard] == node) }
        #expect(PlacementPlanner.violations(of: retry, policy: policy(6, 3), nodes: nodes).isEmpty)
    }

    @Test func freeSpaceWeighsTheChoice() throws {
        // Two countries of one node each per region; one node nearly full.
        var nodes = topology(["FR", "DE", "CH", "NZ"], perCountry: 2, regions: 2, capacity: 1000)
        nodes[0].usedBytes = 990  // fr-0: 10 free, fr-1: 1000 free
        var random = SeededGenerator(seed: 6)
        var counts: [NodeID: Int] = [:]
        for _ in 0..<400 {
            let placement = try PlacementPlanner.place(policy: policy(2, 2), nodes: nodes, shardBytes: 1, using: &random)
            for node in placement.nodes { counts[node, default: 0] += 1 }
        }
        #expect(counts[nodes[0].id, default: 0] * 10 < counts[nodes[1].id, default: 0])
    }

    @Test func spreadsOverRegionsInsideACountry() throws {
        let nodes = topology(["FR"], perCountry: 6, regions: 3)
        var random = SeededGenerator(seed: 7)
        let placement = try PlacementPlanner.place(policy: policy(2, 1), nodes: nodes, shardBytes: 1, using: &random)
        #expect(placement.placementDebt)  // one country cannot keep RS(2,1) under 1 shard
        let regions = Set(placement.nodes.map { id in nodes.first { $0.id == id }!.region })
        #expect(regions.count == 3)
    }

    @Test func policyNeedsRoomPerCountry() {
        #expect(throws: ModelError.self) { try PlacementPolicy(erasure: ErasurePolicy(dataShards: 6, parityShards: 3), margin: 3) }
        #expect(throws: ModelError.self) { try PlacementPolicy(erasure: ErasurePolicy(dataShards: 6, parityShards: 0)) }
    }

    @Test(arguments: ["F", "FRA", "F1", ""])
    func refusesBadCountryCodes(code: String) {
        #expect(throws: ModelError.self) { try Country(code) }
    }

    @Test func countryCodesAreUpperCased() throws {
        #expect(try Country("fr").code == "FR")
        #expect(throws: ModelError.self) { try NodeID("Bad Node") }
    }
}
