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

    let objects: ObjectStore
    let election: LeaderElection
    let settings: Settings
    let logger: Logger
    private let work: PacedWork<PolicyStatus>

    public init(objects: ObjectStore, election: LeaderElection, settings: Settings, logger: Logger) {
        self.objects = objects
        self.election = election
        self.settings = settings
        self.logger = logger
        work = PacedWork(budgetBytesPerSecond: settings.budgetBytesPerSecond, clock: objects.clock)
    }

    var metadata: any MetadataStore { objects.metadata }

    public func status() -> PolicyStatus { work.status() }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if await step() == false { await objects.clock.sleep(settings.idleInterval) }
        }
    }

    /// One page of the running job; false when there was nothing to do.
    @discardableResult
    public func step() async -> Bool {
        guard let term = election.current else { return false }
        work.begin(term)
        do throws(CoordinatorError) {
            await work.followBudget(metadata)
            let step: (job: PolicyStatus.Job, finished: Bool, committed: Bool)? = try await metadata.stepManifestPass(
                key: Keyspace.policyJob, term: term, pageSize: settings.objectsPerStep
            ) { (job: inout PolicyStatus.Job, page) throws(CoordinatorError) in
                let erasure: ErasurePolicy
                do throws(ModelError) { erasure = try ErasurePolicy(dataShards: job.k, parityShards: job.m) } catch {
                    throw CoordinatorError(error.code, error.message)
                }
                let target = objects.policy.forSegments(of: erasure)
                for entry in page {
                    guard let manifest = try? ObjectManifest.decode(entry.value), !manifest.isEncoded(with: erasure)
                    else { continue }
                    job.foundThisPass += 1
                    await reencode(manifest, to: target, term)
                }
            }
            let now = objects.clock.wallMillis()
            work.withLock { state in
                state.status.job = step.flatMap { $0.committed && !$0.finished ? $0.job : nil }
                if let step, step.finished && step.committed { state.status.lastJobFinishedAt = now }
            }
            if let step, step.finished && step.committed {
                logger.notice("re-encoding finished", metadata: ["policy": "RS(\(step.job.k),\(step.job.m))", "passes": "\(step.job.pass)"])
            }
            await work.publish(term, key: Keyspace.policyStatus, to: metadata)
            return step != nil
        } catch {
            work.withLock { $0.status.lastError = error.message }
            logger.warning("re-encoding step failed", metadata: ["error": "\(error.message)"])
            await work.publish(term, key: Keyspace.policyStatus, to: metadata)
            return false
        }
    }

    /// Re-encodes one object, a few segments per swap, paced by the budget.
    private func reencode(_ manifest: ObjectManifest, to target: PlacementPolicy, _ term: LeaderTerm) async {
        let perSegment = manifest.segments.map { Int64($0.length) * 2 }.max() ?? 0
        while true {
            await work.pace(perSegment * Int64(settings.segmentsPerSwap))
            do {
                let outcome = try await objects.reencode(objectId: manifest.id, to: target, segmentsMax: settings.segmentsPerSwap, fence: term.fence)
                switch outcome {
                case .reencoded(let segments, let read, let written, let finished):
                    work.record(written)
                    work.withLock { state in
                        state.status.segmentsReencoded += segments
                        state.status.bytesRead += read
                        state.status.bytesWritten += written
                        if finished { state.status.objectsReencoded += 1 }
                    }
                    if finished {
                        logger.info("object re-encoded", metadata: ["object.id": "\(manifest.id)", "policy": "\(target.erasure)"])
                        return
                    }
                case .skipped:
                    return
                case .conflict:
                    work.withLock { $0.status.refused += 1 }
                    return
                }
            } catch {
                work.withLock { state in
                    state.status.failed += 1
                    state.status.lastError = "\(manifest.id): \(error.message)"
                }
                logger.warning("re-encoding failed", metadata: ["object.id": "\(manifest.id)", "error": "\(error.message)"])
                return
            }
        }
    }
}
