import CoffreAPI
import CoffreModel
import Coordinator
import Foundation
import Logging
import Metadata
import Placement
import Testing
import TestSupport

/// Draining a node over in-memory nodes and embedded metadata: the leader's rebalancer moves
/// every shard off it (copy, verify, swap), under the policy, resumable by another leader and
/// cancellable between moves.
@Suite struct DrainTests {
    func placedOn(_ node: NodeID, _ cluster: MemoryCluster, _ ids: [String]) async throws -> [String] {
        var found: [String] = []
        for id in ids where try await cluster.store.manifest(id).segments.contains(where: { $0.shards.contains { $0.node == node } }) {
            found.append(id)
        }
        return found
    }

    @Test func aDrainedNodeEndsEmptyUnderThePolicyAndAnotherLeaderFinishesIt() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder, segmentSize: 256 << 10)
            var random = SeededGenerator(seed: 41)
            var stored: [String: [UInt8]] = [:]
            for index in 0..<8 {
                await cluster.topology.refresh()
                let bytes = random.bytes(Int.random(in: 1...(900 << 10), using: &random))
                _ = try await cluster.upload(bytes, id: "o\(index)")
                stored["o\(index)"] = bytes
            }
            let ids = stored.keys.sorted()
            var victim = cluster.nodes[0]
            for node in cluster.nodes where try await placedOn(node, cluster, ids).count > 2 {
                victim = node
                break
            }
            let before = try await placedOn(victim, cluster, ids)
            #expect(before.count > 2)
            try await cluster.metadata.put(Keyspace.drain(victim), Array("1".utf8))
            cluster.topology.setDraining([victim])

            // One leader moves some objects, then loses the lead; another finishes.
            let first = LeaderElection(coordinator: "c-1", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await first.step()
            let settings = RebalanceWorker.Settings(budgetBytesPerSecond: 1 << 40, objectsPerStep: 2)
            let worker = RebalanceWorker(objects: cluster.store, election: first, settings: settings, logger: Logger(label: "test"))
            await cluster.topology.refresh()
            #expect(await worker.step())
            #expect(worker.status().movesDone > 0)
            let left = try await placedOn(victim, cluster, ids)
            #expect(left.count < before.count && !left.isEmpty, "a step moves at most two objects")
            await first.resign()
            #expect(await worker.step() == false, "a former leader moves nothing")

            let second = LeaderElection(coordinator: "c-2", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await second.step()
            let successor = RebalanceWorker(objects: cluster.store, election: second, settings: settings, logger: Logger(label: "test"))
            for _ in 0..<10 where try await !placedOn(victim, cluster, ids).isEmpty {
                await cluster.topology.refresh()
                await successor.step()
            }
            #expect(try await placedOn(victim, cluster, ids).isEmpty, "the drained node holds no referenced shard")
            #expect(try await cluster.metadata.list(prefix: Keyspace.placements(victim)).isEmpty, "the index agrees")
            await successor.step()
            #expect(successor.status().draining.map(\.objectsLeft) == [0])
            for id in ids {
                let manifest = try await cluster.store.manifest(id)
                for segment in manifest.segments {
                    let placement = Placement(nodes: segment.shards.map(\.node), placementDebt: false)
                    #expect(PlacementPlanner.violations(of: placement, policy: cluster.store.policy, nodes: cluster.topology.descriptors()).isEmpty)
                }
                #expect(try await cluster.download(id) == stored[id], "\(id) reads back bit-exact")
            }
            // New uploads place nothing on a draining node.
            await cluster.topology.refresh()
            let fresh = try await cluster.upload(random.bytes(600 << 10), id: "fresh")
            #expect(!fresh.segments.contains { $0.shards.contains { $0.node == victim } })
        }
    }

    @Test func undrainStopsTheMovesBetweenTwoObjects() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder, segmentSize: 256 << 10)
            var random = SeededGenerator(seed: 42)
            var ids: [String] = []
            for index in 0..<10 {
                await cluster.topology.refresh()
                _ = try await cluster.upload(random.bytes(300 << 10), id: "u\(index)")
                ids.append("u\(index)")
            }
            let victim = try await cluster.store.manifest("u0").segments[0].shards[0].node
            try await cluster.metadata.put(Keyspace.drain(victim), Array("1".utf8))
            let election = LeaderElection(coordinator: "c", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await election.step()
            let worker = RebalanceWorker(
                objects: cluster.store, election: election, settings: .init(budgetBytesPerSecond: 1 << 40, objectsPerStep: 1),
                logger: Logger(label: "test"))
            await cluster.topology.refresh()
            #expect(await worker.step())
            let left = try await placedOn(victim, cluster, ids)
            try await cluster.metadata.delete(Keyspace.drain(victim))
            #expect(await worker.step() == false)
            #expect(try await placedOn(victim, cluster, ids) == left, "nothing moves once the drain is cancelled")
            #expect(!left.isEmpty)
        }
    }

    @Test func aStartedRebalanceEvensOutNewNodesThenEndsAndACancelStopsIt() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder, segmentSize: 256 << 10, capacityBytes: 32 << 20)
            // New Zealand's nodes join after the data is written: they hold nothing.
            for n in 1...3 { cluster.transport.setFull("nz-\(n)", true) }
            var random = SeededGenerator(seed: 43)
            var stored: [String: [UInt8]] = [:]
            for index in 0..<12 {
                await cluster.topology.refresh()
                let bytes = random.bytes(900 << 10)
                _ = try await cluster.upload(bytes, id: "r\(index)")
                stored["r\(index)"] = bytes
            }
            for n in 1...3 { cluster.transport.setFull("nz-\(n)", false) }
            await cluster.topology.refresh()
            func spread() -> Double {
                let use = cluster.topology.descriptors().map { Double($0.usedBytes) / Double($0.capacityBytes) }
                return use.max()! - use.min()!
            }
            #expect(spread() > 0.04)

            let election = LeaderElection(coordinator: "c", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await election.step()
            let worker = RebalanceWorker(
                objects: cluster.store, election: election, settings: .init(budgetBytesPerSecond: 1 << 40, objectsPerStep: 5),
                logger: Logger(label: "test"))
            let job = RebalanceStatus.Job(startedAt: 1, spread: 0.01)
            try await cluster.metadata.put(Keyspace.rebalanceJob, Array(try JSONEncoder().encode(job)))

            // Cancelled after one step: nothing more moves.
            await cluster.topology.refresh()
            #expect(await worker.step())
            let afterOne = worker.status().movesDone
            #expect(afterOne > 0 && worker.status().job?.cursor != nil)
            try await cluster.metadata.delete(Keyspace.rebalanceJob)
            #expect(await worker.step() == false && worker.status().movesDone == afterOne)

            // Started again, it runs to the end: a pass that moves nothing.
            try await cluster.metadata.put(Keyspace.rebalanceJob, Array(try JSONEncoder().encode(job)))
            var steps = 0
            while try await cluster.metadata.get(Keyspace.rebalanceJob) != nil, steps < 60 {
                await cluster.topology.refresh()
                await worker.step()
                steps += 1
            }
            #expect(try await cluster.metadata.get(Keyspace.rebalanceJob) == nil, "the rebalance ended after \(steps) steps")
            #expect(worker.status().lastJobFinishedAt != nil)
            await cluster.topology.refresh()
            #expect(spread() <= 0.01 + 0.01, "utilisation within the spread, give or take a shard: \(spread())")
            for id in stored.keys.sorted() {
                let manifest = try await cluster.store.manifest(id)
                for segment in manifest.segments {
                    let placement = Placement(nodes: segment.shards.map(\.node), placementDebt: false)
                    #expect(PlacementPlanner.violations(of: placement, policy: cluster.store.policy, nodes: cluster.topology.descriptors()).isEmpty)
                }
                #expect(try await cluster.download(id) == stored[id], "\(id) reads back bit-exact")
            }
        }
    }
}
