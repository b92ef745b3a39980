public import CoffreAPI
public import CoffreModel
import Foundation
public import Logging
import Metadata
import Placement
public import ServiceLifecycle
import Synchronization

/// The leader's re-encoder: after an operator changed the cluster's erasure scheme
/// (`coffre admin policy set K+M`), it runs the job (`Keyspace.policyJob`) that re-encodes
/// every segment written in another scheme (`ObjectStore.reencode`), a page of manifests at a
/// time, paced by the repair budget, its cursor written under the leader's fence (a new leader
/// resumes at the page where the last one stopped; a cancel wins). Reads and repair meanwhile
/// take each segment in the scheme it records. A pass that finds no segment in another scheme
/// ends the job; one that found some is followed by another, so objects written by uploads
/// that began before the change are caught too.
public final class PolicyWorker: Service, Sendable {
    public struct Settings: Sendable {
        public var budgetBytesPerSecond: Int64
        public var objectsPerStep: Int
        /// Segments re-encoded per manifest swap.
        public var segmentsPerSwap: Int
        public var idleInterval: Duration

        public init(budgetBytesPerSecond: Int64, objectsPerStep: Int = 16, segmentsPerSwap: Int = 4, idleInterval: Duration = .seconds(1)) {
            self.budgetBytesPerSecond = budgetBytesPerSecond
            self.objectsPerStep = objectsPerStep
            self.segmentsPerSwap = segmentsPerSwap
            self.idleInterval = idleInterval
        }
    }

    struct State {
        var epoch: Int64?
        var pacer: Pacer
        var meter = RateMeter()
        var status: PolicyStatus
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
        state = Mutex(State(pacer: Pacer(bytesPerSecond: settings.budgetBytesPerSecond), status: PolicyStatus(leader: nil, epoch: 0)))
    }

    var metadata: any MetadataStore { objects.metadata }
    private var nanoseconds: Int64 { objects.clock.monotonic().nanoseconds }

    public func status() -> PolicyStatus {
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

    /// One page of the running job; false when there was nothing to do.
    @discardableResult
    public func step() async -> Bool {
        guard let term = election.current else { return false }
        state.withLock { state in
            if state.epoch != term.epoch {
                state.epoch = term.epoch
                state.status = PolicyStatus(leader: term.coordinator, epoch: term.epoch)
            }
        }
        do {
            let worked = try await jobStep(term)
            await publish(term)
            return worked
        } catch {
            state.withLock { $0.status.lastError = error.message }
            logger.warning("re-encoding step failed", metadata: ["error": "\(error.message)"])
            await publish(term)
            return false
        }
    }

    private func jobStep(_ term: LeaderTerm) async throws(CoordinatorError) -> Bool {
        let entry: MetadataEntry?
        do { entry = try await metadata.get(Keyspace.policyJob) } catch { throw CoordinatorError(error.code, error.message) }
        guard let entry, var job = try? JSONDecoder().decode(PolicyStatus.Job.self, from: Data(entry.value)) else {
            state.withLock { $0.status.job = nil }
            return false
        }
        let erasure: ErasurePolicy
        do { erasure = try ErasurePolicy(dataShards: job.k, parityShards: job.m) } catch { throw CoordinatorError(error.code, error.message) }
        let target = objects.policy.forSegments(of: erasure)
        if let budget = await metadata.repairBudget() {
            let now = nanoseconds
            state.withLock { if $0.pacer.bytesPerSecond != budget { $0.pacer.setBudget(budget, now: now) } }
        }
        let page: [MetadataEntry]
        do { page = try await metadata.list(prefix: Keyspace.manifests, after: job.cursor, limit: settings.objectsPerStep) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        for manifestEntry in page {
            guard let manifest = try? JSONDecoder().decode(ObjectManifest.self, from: Data(manifestEntry.value)), !manifest.isEncoded(with: erasure)
            else { continue }
            job.foundThisPass += 1
            await reencode(manifest, to: target, term)
        }
        // On to the next page; at the end of a pass, the job ends if the pass found nothing.
        let finished = page.count < settings.objectsPerStep && job.foundThisPass == 0
        if page.count == settings.objectsPerStep {
            job.cursor = page.last?.key
        } else if !finished {
            job.pass += 1
            job.cursor = nil
            job.foundThisPass = 0
        }
        let mutation: MetadataMutation = finished ? .delete(Keyspace.policyJob) : .putJSON(Keyspace.policyJob, job)
        let committed: Int64?
        do { committed = try await metadata.commit(if: [term.fence, .revision(entry.key, entry.modRevision)], then: [mutation]) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        let now = objects.clock.wallMillis()
        state.withLock { state in
            state.status.job = committed == nil || finished ? nil : job
            if finished && committed != nil { state.status.lastJobFinishedAt = now }
        }
        if finished && committed != nil { logger.notice("re-encoding finished", metadata: ["policy": "\(erasure)", "passes": "\(job.pass)"]) }
        return true
    }

    /// Re-encodes one object, a few segments per swap, paced by the budget.
    private func reencode(_ manifest: ObjectManifest, to target: PlacementPolicy, _ term: LeaderTerm) async {
        let perSegment = manifest.segments.map { Int64($0.length) * 2 }.max() ?? 0
        while true {
            let wait = state.withLock { $0.pacer.spend(perSegment * Int64(settings.segmentsPerSwap), now: nanoseconds) }
            if wait > 0 { await objects.clock.sleep(.nanoseconds(wait)) }
            do {
                let outcome = try await objects.reencode(objectId: manifest.id, to: target, segmentsMax: settings.segmentsPerSwap, fence: term.fence)
                let now = nanoseconds
                switch outcome {
                case .reencoded(let segments, let read, let written, let finished):
                    state.withLock { state in
                        state.status.segmentsReencoded += segments
                        state.status.bytesRead += read
                        state.status.bytesWritten += written
                        state.meter.record(written, now: now)
                        if finished { state.status.objectsReencoded += 1 }
                    }
                    if finished {
                        logger.info("object re-encoded", metadata: ["object.id": "\(manifest.id)", "policy": "\(target.erasure)"])
                        return
                    }
                case .skipped:
                    return
                case .conflict:
                    state.withLock { $0.status.refused += 1 }
                    return
                }
            } catch {
                state.withLock { state in
                    state.status.failed += 1
                    state.status.lastError = "\(manifest.id): \(error.message)"
                }
                logger.warning("re-encoding failed", metadata: ["object.id": "\(manifest.id)", "error": "\(error.message)"])
                return
            }
        }
    }

    private func publish(_ term: LeaderTerm) async {
        let now = objects.clock.monotonic()
        let nanos = nanoseconds
        let status: PolicyStatus? = state.withLock { state in
            guard state.published.take(now: now) else { return nil }
            state.status.rateBytesPerSecond = state.meter.rate(now: nanos)
            state.status.updatedAt = objects.clock.wallMillis()
            return state.status
        }
        guard let status else { return }
        _ = try? await metadata.commit(if: [term.fence], then: [.putJSON(Keyspace.policyStatus, status)])
    }
}
