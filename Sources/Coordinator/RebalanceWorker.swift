public import CoffreAPI
public import CoffreModel
import Foundation
public import Logging
import Metadata
import Placement
public import ServiceLifecycle
import Synchronization

/// The leader's rebalancer: it drains nodes, and runs a rebalance an operator started (placement
/// debt paid back, utilisation evened). The shell around `RebalancePlanner`.
///
/// Each step reads the nodes operators asked to drain (`Keyspace.drains`), takes a page of
/// the objects the placement index puts on them, plans their segments (drain moves, and the
/// violations of those segments the moves can pay back at once), and carries out the moves
/// of a few objects at once (`ObjectStore.moveShards`: copy, verify, swap by
/// compare-and-swap), paced by the repair budget. Everything it needs is in the metadata
/// store, so a new leader picks the work up where the last one left it, and `undrain`
/// stops it between two moves with nothing half done (a copy not yet swapped is garbage
/// the collector takes).
public final class RebalanceWorker: Service, Sendable {
    public struct Settings: Sendable {
        /// Until an operator sets one (`Keyspace.repairBudget`, shared with repair).
        public var budgetBytesPerSecond: Int64
        /// Healthy shards beyond k a segment needs before it moves (repair goes first).
        public var margin: Int
        /// Objects planned per step (per draining node). `objectsLeft` counts up to
        /// `Limits.metadataListPageMax`.
        public var objectsPerStep: Int
        public var idleInterval: Duration

        public init(budgetBytesPerSecond: Int64, margin: Int = 1, objectsPerStep: Int = 64, idleInterval: Duration = .seconds(1)) {
            self.budgetBytesPerSecond = budgetBytesPerSecond
            self.margin = margin
            self.objectsPerStep = objectsPerStep
            self.idleInterval = idleInterval
        }
    }

    let objects: ObjectStore
    let election: LeaderElection
    let settings: Settings
    let logger: Logger
    private let state: PacedWork<RebalanceStatus>

    public init(objects: ObjectStore, election: LeaderElection, settings: Settings, logger: Logger) {
        self.objects = objects
        self.election = election
        self.settings = settings
        self.logger = logger
        state = PacedWork(budgetBytesPerSecond: settings.budgetBytesPerSecond, clock: objects.clock)
    }

    var metadata: any MetadataStore { objects.metadata }

    public func status() -> RebalanceStatus { state.status() }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if await step() == false { await objects.clock.sleep(settings.idleInterval) }
        }
    }

    /// One bounded step; false when there was nothing to do.
    @discardableResult
    public func step() async -> Bool {
        guard let term = election.current else { return false }
        state.begin(term)
        do {
            let drains = try await readDrains()
            await state.followBudget(metadata)
            var progress: [RebalanceStatus.Drain] = []
            var placed = Set<String>()
            for (node, requestedAt) in drains.sorted(by: { $0.key < $1.key }) {
                let objectIds = try await metadata.objectsPlaced(on: node, limit: Limits.metadataListPageMax).keys.sorted()
                progress.append(.init(node: node.value, requestedAt: requestedAt, objectsLeft: objectIds.count))
                placed.formUnion(objectIds.prefix(settings.objectsPerStep))
            }
            state.withLock { $0.status.draining = progress }
            guard !placed.isEmpty else {
                // Drains first; a started rebalance when no drain has work.
                let worked = try await jobStep(term, draining: Set(drains.keys))
                await state.publish(term, key: Keyspace.rebalanceStatus, to: metadata)
                return worked
            }
            let moves = try await plan(Array(placed).sorted().prefix(settings.objectsPerStep), draining: Set(drains.keys), spread: 1)
            await carryOut(moves, term)
            await state.publish(term, key: Keyspace.rebalanceStatus, to: metadata)
            return !moves.isEmpty
        } catch {
            state.withLock { $0.status.lastError = error.message }
            logger.warning("rebalance step failed", metadata: ["error": "\(error.message)"])
            await state.publish(term, key: Keyspace.rebalanceStatus, to: metadata)
            return false
        }
    }

    /// One page of a started rebalance (`Keyspace.rebalanceJob`, `stepManifestPass`): the
    /// next objects of its pass over the manifests, planned and moved (debt, skew); a pass that
    /// moves nothing ends the job.
    private func jobStep(_ term: LeaderTerm, draining: Set<NodeID>) async throws(CoordinatorError) -> Bool {
        let step: (job: RebalanceStatus.Job, finished: Bool, committed: Bool)? = try await metadata.stepManifestPass(
            key: Keyspace.rebalanceJob, term: term, pageSize: settings.objectsPerStep
        ) { (job: inout RebalanceStatus.Job, page) throws(CoordinatorError) in
            let objectIds = page.map { String($0.key.dropFirst(Keyspace.manifests.count)) }
            let moves = try await plan(objectIds[...], draining: draining, spread: job.spread)
            let done = state.withLock { $0.status.movesDone }
            await carryOut(moves, term)
            job.movesThisPass += state.withLock { $0.status.movesDone } - done
        }
        let now = objects.clock.wallMillis()
        state.withLock { state in
            state.status.job = step.flatMap { $0.committed && !$0.finished ? $0.job : nil }
            if let step, step.finished && step.committed { state.status.lastJobFinishedAt = now }
        }
        if let step, step.finished && step.committed { logger.notice("rebalance finished", metadata: ["rebalance.passes": "\(step.job.pass)"]) }
        return step != nil
    }

    /// The planner's moves for these objects' segments.
    private func plan(_ objectIds: ArraySlice<String>, draining: Set<NodeID>, spread: Double) async throws(CoordinatorError) -> [ShardMove] {
        var segments: [SegmentPlacement] = []
        for objectId in objectIds {
            do {
                segments += ObjectStore.segmentPlacements(try await objects.manifest(objectId), only: objects.policy.erasure)
            } catch {
                guard error.code == .notFound else { throw error }
            }
        }
        // A drain moves what it must (spread 1: no skew moves); a started rebalance evens out.
        let planner = RebalancePlanner(policy: objects.policy, margin: settings.margin, spread: spread)
        let plan = planner.plan(segments: segments, nodes: objects.topology.descriptors(), draining: draining)
        state.withLock { $0.status.segmentsSkipped = plan.skipped.count }
        return plan.moves
    }

    /// Moves of up to `Limits.repairSegmentsInFlightMax` objects at once, paced by the budget.
    private func carryOut(_ moves: [ShardMove], _ term: LeaderTerm) async {
        let byObject = Dictionary(grouping: moves, by: \.objectId)
        var pending = byObject.keys.sorted()[...]
        await withTaskGroup(of: Void.self) { group in
            func start() {
                guard let objectId = pending.popFirst() else { return }
                group.addTask { await self.move(byObject[objectId]!, term) }
            }
            for _ in 0..<Limits.repairSegmentsInFlightMax { start() }
            while await group.next() != nil { start() }
        }
    }

    private func move(_ moves: [ShardMove], _ term: LeaderTerm) async {
        let bytes = moves.reduce(0) { $0 + $1.bytes }
        await state.pace(bytes)
        let objectId = moves[0].objectId
        do {
            let outcome = try await objects.moveShards(objectId: objectId, moves: moves, fence: term.fence)
            if case .moved(_, let moved) = outcome { state.record(moved) }
            state.withLock { state in
                switch outcome {
                case .moved(let count, let moved):
                    state.status.movesDone += count
                    state.status.bytesMoved += moved
                    for move in moves { objects.topology.recordMove(bytes: move.bytes, from: move.from, to: move.to) }
                case .conflict: state.status.movesRefused += moves.count
                case .skipped: break
                }
            }
            if case .moved(let count, _) = outcome {
                logger.info("shards moved", metadata: ["object.id": "\(objectId)", "shard.count": "\(count)", "leader.epoch": "\(term.epoch)"])
            }
        } catch {
            state.withLock { state in
                state.status.movesFailed += moves.count
                state.status.lastError = "\(objectId): \(error.message)"
            }
            logger.warning("shard move failed", metadata: ["object.id": "\(objectId)", "error": "\(error.message)"])
        }
    }

    private func readDrains() async throws(CoordinatorError) -> [NodeID: Int64] {
        do {
            return try await metadata.byNode(Keyspace.drains).mapValues { Int64(String(decoding: $0.value, as: UTF8.self)) ?? 0 }
        } catch {
            throw CoordinatorError(error.code, error.message)
        }
    }
}
