import CoffreAPI
import CoffreModel
import Coordinator
import Foundation
import Logging
import Metadata
import NodeClient
import Placement
import Testing
import TestSupport

/// A drill's decisions (`DrillProgress`), step by step, and the leader's drill runner over
/// in-memory nodes: the fault goes on and comes off the nodes, a real failure elsewhere aborts.
@Suite(.serialized, .timeLimit(.minutes(3))) struct DrillTests {
    static func record(ttl: Int = 60, nodes: [String] = ["fr-1", "fr-2", "fr-3"], margin: Int = 0) -> DrillRecord {
        DrillRecord(
            id: "drill-1", target: ["country FR"], nodes: nodes, coordinators: [], mode: .stop, latencyMilliseconds: 0, lossPercent: 0,
            ttlSeconds: ttl, margin: margin, dataShards: 6, repairAfterSeconds: 30, startedAt: 1_000_000,
            baseline: .init(epoch: 0, segmentsRepaired: 0, bytesDone: 0, placementDebtCreated: 0))
    }

    static func seen(
        _ at: Int64, down: Bool = false, up: Bool = false, lost: Bool = false, epoch: Int64 = 1, repaired: Int = 0, bytes: Int64 = 0,
        check: DrillCheck? = nil
    ) -> DrillObservation {
        DrillObservation(
            now: 1_000_000 + at, drilledDown: down, drilledUp: up, drilledLost: lost,
            repair: .init(epoch: epoch, segmentsRepaired: repaired, bytesDone: bytes, placementDebtCreated: 0), check: check)
    }

    static func check(atRisk: Int = 0, degraded: Int = 0, lowest: Int = 6, elsewhere: [String] = []) -> DrillCheck {
        DrillCheck(lowestHealthy: lowest, atRisk: atRisk, riskiest: atRisk > 0 ? "o/0: 5 healthy" : nil, downElsewhere: elsewhere, degraded: degraded, segments: 10, debtSegments: 0)
    }

    @Test func aDrillDetectsLiftsAtItsTTLAndEndsOnceRedundancyIsBack() {
        var drill = Self.record(ttl: 20)
        #expect(DrillProgress.advance(&drill, Self.seen(0, repaired: 4, bytes: 400)) == [.applyFault])
        #expect(drill.phase == .faulted && drill.detectedAt == nil)
        #expect(DrillProgress.advance(&drill, Self.seen(3_000, down: true, repaired: 4, bytes: 400, check: Self.check(degraded: 10))) == [.applyFault])
        #expect(drill.detectedAt == 1_003_000 && drill.lowestHealthySeen == 6 && drill.degradedSegments == 10)
        #expect(drill.repairStartedAt == nil, "a drill shorter than repair_after starts no repair")
        #expect(DrillProgress.advance(&drill, Self.seen(20_000, down: true, repaired: 4, bytes: 400)) == [.liftFault])
        #expect(drill.phase == .recovering && drill.liftReason == "ttl" && drill.liftedAt == 1_020_000)
        // Lifted: the nodes come back, then the redundancy check finds nothing degraded.
        #expect(DrillProgress.advance(&drill, Self.seen(21_000, up: true, repaired: 4, bytes: 400, check: Self.check(degraded: 10))) == [.liftFault])
        #expect(drill.backAt == 1_021_000 && drill.phase == .recovering)
        #expect(DrillProgress.advance(&drill, Self.seen(22_000, up: true, repaired: 4, bytes: 400, check: Self.check())) == [])
        #expect(drill.phase == .ended && drill.outcome == "recovered" && drill.fullRedundancyAt == 1_022_000)
        #expect(drill.segmentsRebuilt == 0 && drill.bytesRebuilt == 0, "counters count from the first step")
        #expect(DrillProgress.advance(&drill, Self.seen(23_000, up: true)) == [], "an ended drill does nothing")
    }

    @Test func aRealFailureElsewhereAbortsAndStopLiftsAtOnce() {
        var drill = Self.record()
        _ = DrillProgress.advance(&drill, Self.seen(0, check: Self.check()))
        let directives = DrillProgress.advance(&drill, Self.seen(5_000, down: true, check: Self.check(atRisk: 3, lowest: 5, elsewhere: ["de-2"])))
        #expect(directives == [.liftFault])
        #expect(drill.liftReason == "aborted" && drill.abortReason?.contains("de-2") == true && drill.abortReason?.contains("3 segments") == true)
        #expect(drill.lowestHealthySeen == 5)

        var stopped = Self.record()
        _ = DrillProgress.advance(&stopped, Self.seen(0))
        stopped.stopRequested = true
        #expect(DrillProgress.advance(&stopped, Self.seen(1_000)) == [.liftFault])
        #expect(stopped.liftReason == "stopped" && stopped.phase == .recovering)
    }

    @Test func repairDuringTheDrillIsCountedAcrossALeaderChangeAndRedundancyCanComeBackDuringIt() {
        var drill = Self.record(ttl: 600)
        _ = DrillProgress.advance(&drill, Self.seen(0, epoch: 3, repaired: 10, bytes: 1000))
        _ = DrillProgress.advance(&drill, Self.seen(6_000, down: true, lost: true, epoch: 3, repaired: 14, bytes: 1400))
        #expect(drill.repairStartedAt == 1_006_000 && drill.segmentsRebuilt == 4 && drill.bytesRebuilt == 400)
        // A new leader: its counters start at zero; what the last one counted is kept.
        _ = DrillProgress.advance(&drill, Self.seen(8_000, down: true, lost: true, epoch: 4, repaired: 2, bytes: 200, check: Self.check()))
        #expect(drill.leaderChanged && drill.segmentsRebuilt == 6 && drill.bytesRebuilt == 600)
        #expect(drill.fullRedundancyAt == 1_008_000, "every segment whole again while the fault is still on: rebuilt elsewhere")
        #expect(drill.phase == .faulted)
    }

    /// The leader's drill runner over `cluster` holding `objects` objects of 200 KiB, leading
    /// (repair never counts a node lost by time alone).
    static func leadersRunner(_ cluster: MemoryCluster, objects: Int, seed: UInt64) async throws -> DrillWorker {
        var random = SeededGenerator(seed: seed)
        for index in 0..<objects { _ = try await cluster.upload(random.bytes(200 << 10), id: "d\(index)") }
        let election = LeaderElection(coordinator: "c", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
        await election.step()
        let repair = RepairWorker(
            objects: cluster.store, election: election,
            settings: .init(downAfterMilliseconds: 3_600_000, repairAfterMilliseconds: 3_600_000, budgetBytesPerSecond: 1 << 40),
            logger: Logger(label: "test"))
        return DrillWorker(objects: cluster.store, election: election, repair: repair, settings: .init(checkEvery: 1), logger: Logger(label: "test"))
    }

    @Test func theLeadersRunnerPutsTheFaultOnAndAbortsWhenANodeElsewhereFails() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder, segmentSize: 64 << 10)
            let worker = try await Self.leadersRunner(cluster, objects: 6, seed: 77)
            #expect(await worker.step() == false, "no drill: nothing to do")

            var drill = Self.record(ttl: 600)
            drill.startedAt = Int64(Date().timeIntervalSince1970 * 1000)
            drill.liftAt = drill.startedAt + 600_000
            drill.nodeFaultUntil = drill.liftAt + 60_000
            try await cluster.metadata.put(Keyspace.drill, Array(try JSONEncoder().encode(drill)))
            #expect(await worker.step())
            for node in drill.nodes { #expect(cluster.transport.fault(node)?.mode == .stop) }
            #expect(!cluster.transport.isUp("fr-1"))

            // The cluster sees the country down; nothing is at risk with margin 0 (6 or more of
            // 9 left). Placement is random: what the drill must see follows from where the
            // shards are (once in a long while no segment had three shards in France, and a
            // test that expected 6 failed).
            var segments: [SegmentManifest] = []
            for index in 0..<6 { segments += try await cluster.store.manifest("d\(index)").segments }
            let drilled = Set(drill.nodes)
            func healthy(_ segment: SegmentManifest, without down: Set<String>) -> [String] {
                segment.shards.map(\.node.value).filter { !drilled.contains($0) && !down.contains($0) }
            }
            let riskiest = try #require(segments.min { healthy($0, without: []).count < healthy($1, without: []).count })
            for node in drill.nodes { cluster.topology.reportFailure(try NodeID(node)) }
            #expect(await worker.step())
            var recorded = try #require(try await DrillWorker.read(cluster.metadata)?.0)
            #expect(recorded.phase == .faulted && recorded.detectedAt != nil && recorded.lowestHealthySeen == healthy(riskiest, without: []).count)

            // Real failures outside the drill take the riskiest segment to 5: abort.
            let failing = Array(healthy(riskiest, without: []).sorted().prefix(healthy(riskiest, without: []).count - 5))
            for node in failing {
                cluster.transport.setDown(node, true)
                cluster.topology.reportFailure(try NodeID(node))
            }
            #expect(await worker.step())
            recorded = try #require(try await DrillWorker.read(cluster.metadata)?.0)
            #expect(recorded.phase == .recovering && recorded.liftReason == "aborted")
            #expect(failing.allSatisfy { recorded.abortReason?.contains($0) == true }, "\(failing): \(recorded.abortReason ?? "-")")
            for node in drill.nodes { #expect(cluster.transport.fault(node) == nil, "the fault is lifted from \(node)") }
            #expect(cluster.transport.isUp("fr-1"))

            // The drilled nodes answer again; the failed ones are still down: not recovered yet.
            await cluster.topology.refresh()
            #expect(await worker.step())
            recorded = try #require(try await DrillWorker.read(cluster.metadata)?.0)
            #expect(recorded.backAt != nil && recorded.phase == .recovering && recorded.degradedSegments > 0)
            for node in failing { cluster.transport.setDown(node, false) }
            await cluster.topology.refresh()
            #expect(await worker.step())
            recorded = try #require(try await DrillWorker.read(cluster.metadata)?.0)
            #expect(recorded.phase == .ended && recorded.outcome == "recovered" && recorded.degradedSegments == 0)
        }
    }

    /// An `external` drill puts no fault on anything (the operator kills or damages), yet
    /// detects, watches and ends as the others do.
    @Test func anExternalDrillPutsNoFaultOnAndStillDetectsAndEnds() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder, segmentSize: 64 << 10)
            let worker = try await Self.leadersRunner(cluster, objects: 4, seed: 78)
            var drill = Self.record(ttl: 600, nodes: ["fr-1"])
            drill.mode = .external
            drill.coordinators = ["c-fr"]
            drill.startedAt = Int64(Date().timeIntervalSince1970 * 1000)
            drill.liftAt = drill.startedAt + 600_000
            drill.nodeFaultUntil = drill.liftAt + 60_000
            #expect(!drill.faults(coordinator: "c-fr", now: drill.startedAt + 1), "no coordinator faults itself for an external drill")
            try await cluster.metadata.put(Keyspace.drill, Array(try JSONEncoder().encode(drill)))
            #expect(await worker.step())
            #expect(cluster.transport.fault("fr-1") == nil && cluster.transport.isUp("fr-1"), "no fault put on the node")

            // The operator's own failure: the node dies; the drill sees it.
            cluster.transport.setDown("fr-1", true)
            cluster.topology.reportFailure(try NodeID("fr-1"))
            #expect(await worker.step())
            var recorded = try #require(try await DrillWorker.read(cluster.metadata)?.0)
            #expect(recorded.phase == .faulted && recorded.detectedAt != nil)

            // Stopped (as a script does at the TTL), the node back: recovered, no fault ever set.
            recorded.stopRequested = true
            try await cluster.metadata.put(Keyspace.drill, Array(try JSONEncoder().encode(recorded)))
            #expect(await worker.step())
            cluster.transport.setDown("fr-1", false)
            await cluster.topology.refresh()
            #expect(await worker.step())
            recorded = try #require(try await DrillWorker.read(cluster.metadata)?.0)
            #expect(recorded.phase == .ended && recorded.outcome == "recovered", "\(recorded.events)")
            #expect(cluster.transport.fault("fr-1") == nil)
        }
    }
}
