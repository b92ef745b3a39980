public import CoffreAPI
public import CoffreModel
import Foundation
public import Logging
public import Metadata
public import Placement
public import ServiceLifecycle
import Synchronization

/// The leader's drill runner: the shell around `DrillProgress`.
///
/// The drill lives in the metadata store (`Keyspace.drill`), so whichever coordinator leads
/// runs it: each step observes the drilled nodes, the repair counters and (every few steps)
/// the redundancy of every segment, advances the record, writes it under the leader's fence,
/// then puts the fault on the drilled nodes or takes it off (`ShardTransport.setFault`;
/// coordinators read the record and apply their own). Nodes lift a fault by themselves at
/// `nodeFaultUntil`, so a drill outlives no leader by much.
public final class DrillWorker: Service, Sendable {
    public struct Settings: Sendable {
        public var interval: Duration
        /// Steps between two redundancy checks (each reads every manifest).
        public var checkEvery: Int
        public init(interval: Duration = .seconds(1), checkEvery: Int = 3) {
            self.interval = interval
            self.checkEvery = checkEvery
        }
    }

    let objects: ObjectStore
    let election: LeaderElection
    let repair: RepairWorker
    let settings: Settings
    let logger: Logger
    private let steps = Mutex(0)

    public init(objects: ObjectStore, election: LeaderElection, repair: RepairWorker, settings: Settings = .init(), logger: Logger) {
        self.objects = objects
        self.election = election
        self.repair = repair
        self.settings = settings
        self.logger = logger
    }

    var metadata: any MetadataStore { objects.metadata }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await step()
            await objects.clock.sleep(settings.interval)
        }
    }

    /// The drill as recorded (running or the last one), nil when there was never one.
    public static func read(_ metadata: any MetadataStore) async throws(CoordinatorError) -> (DrillRecord, MetadataEntry)? {
        let entry: MetadataEntry?
        do { entry = try await metadata.get(Keyspace.drill) } catch { throw CoordinatorError(error.code, error.message) }
        guard let entry, let record = try? JSONDecoder().decode(DrillRecord.self, from: Data(entry.value)) else { return nil }
        return (record, entry)
    }

    /// One step of the running drill, if any, on the leader; false when there was nothing to do.
    @discardableResult
    public func step() async -> Bool {
        guard let term = election.current else { return false }
        do {
            guard let (before, entry) = try await Self.read(metadata), before.phase != .ended else { return false }
            let number = steps.withLock { $0 += 1; return $0 }
            var record = before
            let seen = try await observe(record, check: number % settings.checkEvery == 1 || settings.checkEvery == 1)
            let directives = DrillProgress.advance(&record, seen)
            if record != before {
                let committed: Int64?
                do {
                    committed = try await metadata.commit(if: [term.fence, .revision(entry.key, entry.modRevision)], then: [.putJSON(Keyspace.drill, record)])
                } catch { throw CoordinatorError(error.code, error.message) }
                // Another leader, or `drill stop`, wrote meanwhile: the next step reads again.
                guard committed != nil else { return true }
                for event in record.events.dropFirst(before.events.count) {
                    logger.notice("drill", metadata: ["drill.id": "\(record.id)", "drill.event": "\(event.what)"])
                }
            }
            for directive in directives { await carryOut(directive, record) }
            return true
        } catch {
            logger.warning("drill step failed", metadata: ["error": "\((error as? any CodedError)?.message ?? "\(error)")"])
            return false
        }
    }

    private func observe(_ record: DrillRecord, check: Bool) async throws(CoordinatorError) -> DrillObservation {
        let drilled = Set(record.nodes.compactMap { try? NodeID($0) })
        let nodes = objects.topology.descriptors()
        let up = Set(nodes.filter(\.isUp).map(\.id))
        let status = repair.status()
        let counters = DrillRecord.Baseline(
            epoch: status.epoch, segmentsRepaired: status.segmentsRepaired, bytesDone: status.bytesDone,
            placementDebtCreated: status.placementDebtCreated)
        var result = DrillObservation(
            now: objects.clock.wallMillis(), drilledDown: !drilled.isEmpty && drilled.isDisjoint(with: up),
            drilledUp: drilled.isSubset(of: up), drilledLost: !drilled.isDisjoint(with: Set(status.lostNodes.compactMap { try? NodeID($0) })),
            repair: counters, check: nil)
        if check {
            let (segments, _, _, debt) = try await objects.everySegment()
            let faulted = record.phase == .faulted ? drilled : []
            let k = record.dataShards
            let risk = DrillPlanner.preflight(segments: segments, nodes: nodes, fault: faulted, dataShards: k, margin: record.margin, listed: 1)
            // Degraded: fewer healthy shards than the segment has (each in its own scheme).
            let degraded = segments.filter { segment in Set(segment.nodes.filter { up.contains($0) }).count < segment.nodes.count }.count
            result.check = DrillCheck(
                lowestHealthy: risk.lowestHealthy, atRisk: risk.atRiskCount,
                riskiest: risk.atRisk.first.map { "\($0.objectId)/\($0.segment): \($0.healthy) healthy" },
                downElsewhere: nodes.filter { !$0.isUp && !drilled.contains($0.id) }.map(\.id.value).sorted(),
                degraded: degraded, segments: segments.count, debtSegments: debt)
        }
        return result
    }

    /// Puts the fault on every drilled node, or takes it off; a node that does not answer is
    /// tried again at the next step (and lifts it by itself at `nodeFaultUntil`). Nothing for
    /// an `external` drill: the operator's failure is not ours to lift.
    private func carryOut(_ directive: DrillDirective, _ record: DrillRecord) async {
        guard record.mode.injects else { return }
        let fault: NodeFault? =
            directive == .applyFault
            ? NodeFault(
                drill: record.id, mode: record.mode, untilMillis: record.nodeFaultUntil, latencyMilliseconds: record.latencyMilliseconds,
                lossPercent: record.lossPercent)
            : nil
        await withTaskGroup(of: Void.self) { group in
            for node in record.nodes {
                guard let id = try? NodeID(node), let member = objects.topology.member(id) else { continue }
                group.addTask { [objects] in try? await objects.topology.client.setFault(base: member.url, fault) }
            }
        }
    }
}
