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

    struct State {
        var epoch: Int64?
        var pacer: Pacer
        var meter = RateMeter()
        var status: RebalanceStatus
        var published = PublishThrottle()
    }

    let objects: ObjectStore
    let election: LeaderElection
    let settings: Settings
    let logger: Logger
    private let state: Mutex<State>

    public init(objects: ObjectStore, election: LeaderElection, settings: Settings, logger: Logger) {
        self.objects = objects
        self.election = election
        self.settings = settings
        self.logger = logger
        state = Mutex(State(pacer: Pacer(bytesPerSecond: settings.budgetBytesPerSecond), status: RebalanceStatus(leader: nil, epoch: 0)))
    }

    var metadata: any MetadataStore { objects.metadata }
    private var nanoseconds: Int64 { objects.clock.monotonic().nanoseconds }

    public func status() -> RebalanceStatus {
        let now = nanoseconds
        return state.withLock { state in
            state.status.rateBytesPerSecond = state.meter.rate(now: now)
            return state.status
        }
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if await step() == false { await objects.clock.sleep(settings.idleInterval) }
        }
    }

    /// One bounded step; false when there was nothing to do.
    @discardableResult
    public func step() async -> Bool {
        guard let term = election.current else { return false }
        state.withLock { state in
            if state.epoch != term.epoch {
                state.epoch = term.epoch
                state.status = RebalanceStatus(leader: term.coordinator, epoch: term.epoch)
            }
        }
        do {
            let drains = try await readDrains()
            await readBudget()
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
                await publish(term)
                return worked
            }
            let moves = try await plan(Array(placed).sorted().prefix(settings.objectsPerStep), draining: Set(drains.keys), spread: 1)
            await carryOut(moves, term)
            await publish(term)
            return !moves.isEmpty
        } catch {
            state.withLock { $0.status.lastError = error.message }
            logger.warning("rebalance step failed", metadata: ["error": "\(error.message)"])
            await publish(term)
            return false
        }
    }

    /// One page of a started rebalance (`Keyspace.rebalanceJob`): the next objects of its pass
    /// over the manifests, planned and moved (debt, skew). The job record holds the cursor,
    /// written under the leader's fence after the page's moves, so a new leader resumes at the
    /// page where the last one stopped; a pass that moves nothing ends the job.
    private func jobStep(_ term: LeaderTerm, draining: Set<NodeID>) async throws(CoordinatorError) -> Bool {
        let entry: MetadataEntry?
        do { entry = try await metadata.get(Keyspace.rebalanceJob) } catch { throw CoordinatorError(error.code, error.message) }
        guard let entry, var job = try? JSONDecoder().decode(RebalanceStatus.Job.self, from: Data(entry.value)) else {
            state.withLock { $0.status.job = nil }
            return false
        }
        let page: [MetadataEntry]
        do { page = try await metadata.list(prefix: Keyspace.manifests, after: job.cursor, limit: settings.objectsPerStep) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        let objectIds = page.map { String($0.key.dropFirst(Keyspace.manifests.count)) }
        let moves = try await plan(objectIds[...], draining: draining, spread: job.spread)
        let done = state.withLock { $0.status.movesDone }
        await carryOut(moves, term)
        job.movesThisPass += state.withLock { $0.status.movesDone } - done
        // On to the next page; at the end of a pass, the job ends if the pass moved nothing.
        let finished = page.count < settings.objectsPerStep && job.movesThisPass == 0
        if page.count == settings.objectsPerStep {
            job.cursor = page.last?.key
        } else if !finished {
            job.pass += 1
            job.cursor = nil
            job.movesThisPass = 0
        }
        let mutation: MetadataMutation = finished ? .delete(Keyspace.rebalanceJob) : .putJSON(Keyspace.rebalanceJob, job)
        // Conditional on the record as read: a cancel (its deletion) meanwhile wins.
        let committed: Int64?
        do { committed = try await metadata.commit(if: [term.fence, .revision(entry.key, entry.modRevision)], then: [mutation]) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        let now = objects.clock.wallMillis()
        state.withLock { state in
            state.status.job = committed == nil || finished ? nil : job
            if finished && committed != nil { state.status.lastJobFinishedAt = now }
        }
        if finished && committed != nil { logger.notice("rebalance finished", metadata: ["rebalance.passes": "\(job.pass)"]) }
        return true
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
        let spentAt = nanoseconds
        let wait = state.withLock { $0.pacer.spend(bytes, now: spentAt) }
        if wait > 0 { await objects.clock.sleep(.nanoseconds(wait)) }
        let objectId = moves[0].objectId
        do {
            let outcome = try await objects.moveShards(objectId: objectId, moves: moves, fence: term.fence)
            let doneAt = nanoseconds
            state.withLock { state in
                switch outcome {
                case .moved(let count, let moved):
                    state.status.movesDone += count
                    state.status.bytesMoved += moved
                    state.meter.record(moved, now: doneAt)
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

    private func readBudget() async {
        guard let budget = await metadata.repairBudget() else { return }
        let now = nanoseconds
        state.withLock { state in
            if state.pacer.bytesPerSecond != budget { state.pacer.setBudget(budget, now: now) }
        }
    }

    private func publish(_ term: LeaderTerm) async {
        let now = objects.clock.monotonic()
        let nanos = nanoseconds
        let status: RebalanceStatus? = state.withLock { state in
            guard state.published.take(now: now) else { return nil }
            state.status.rateBytesPerSecond = state.meter.rate(now: nanos)
            state.status.updatedAt = objects.clock.wallMillis()
            return state.status
        }
        guard let status else { return }
        _ = try? await metadata.commit(if: [term.fence], then: [.putJSON(Keyspace.rebalanceStatus, status)])
    }
}
