public import CoffreAPI
import CoffreModel
import Foundation
public import Logging
import Metadata
import NodeClient
import Placement
public import ServiceLifecycle
import Synchronization

extension ObjectStore {
    /// One step of a node's scrub: the node re-reads a page of its shards against their
    /// CRC-32C; each one it finds corrupt or missing that a manifest places on that node is
    /// recorded as a suspect, which repair rebuilds like a lost shard.
    /// - Returns: the node's report, and how many suspects were recorded.
    public func scrubStep(_ member: ClusterTopology.Member, after cursor: String?, limit: Int) async throws -> (step: ScrubStep, suspects: Int) {
        let step = try await nodes.scrub(base: member.url, after: cursor, limit: limit)
        var recorded = 0
        for finding in step.corrupt {
            guard let bytes = Hex.decode(finding.key), let place = ShardPlace(String(decoding: bytes, as: UTF8.self)) else { continue }
            guard let manifest = try? await manifest(place.objectId),
                manifest.segments.first(where: { $0.index == place.segment })?.shards.first(where: { $0.index == place.shard })?.node == member.id
            else { continue }  // unreferenced: the collector's, not repair's
            try await metadata.put(Keyspace.suspect(member.id, place.objectId, segment: place.segment, shard: place.shard), [])
            recorded += 1
        }
        return (step, recorded)
    }

    /// A whole pass over one node now (`coffre admin scrub --node ID --wait`).
    public func scrubNode(_ member: ClusterTopology.Member) async throws -> ScrubReport {
        var report = ScrubReport(node: member.id.value)
        var cursor: String?
        repeat {
            let (step, suspects) = try await scrubStep(member, after: cursor, limit: 100)
            report.add(step, suspects: suspects)
            cursor = step.next
        } while cursor != nil
        return report
    }
}

/// The leader's scrub schedule: every node in turn re-reads its shards, one bounded step at
/// a time, paced by a byte budget; findings become suspects for repair.
///
/// Departure from the blueprint's "each node scrubs in the background": the node does the
/// verifying, the leader decides when, and collects the findings — nodes hold no metadata
/// credentials and have no channel to the coordinators, and one schedule for the cluster
/// keeps scrub from running on every node of a segment at once.
public final class ScrubScheduler: Service, Sendable {
    public struct Settings: Sendable {
        public var budgetBytesPerSecond: Int64
        /// Shards per step.
        public var pageSize: Int

        public init(budgetBytesPerSecond: Int64, pageSize: Int = 50) {
            self.budgetBytesPerSecond = budgetBytesPerSecond
            self.pageSize = pageSize
        }
    }

    struct State {
        var epoch: Int64?
        var walk = NodeWalk()
        var pacer: Pacer
        var status: ScrubStatus
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
        state = Mutex(State(pacer: Pacer(bytesPerSecond: settings.budgetBytesPerSecond), status: ScrubStatus(leader: nil, epoch: 0)))
    }

    public func status() -> ScrubStatus { state.withLock { $0.status } }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let wait = await step()
            await objects.clock.sleep(wait)
        }
    }

    /// One step of one node; returns how long to wait before the next (the budget).
    @discardableResult
    public func step() async -> Duration {
        guard let term = election.current, settings.budgetBytesPerSecond > 0 else { return .seconds(1) }
        let members = objects.topology.members
        guard !members.isEmpty else { return .seconds(1) }
        // An operator's request is taken between nodes: that node goes next.
        let requested = state.withLock { $0.walk.cursor == nil } ? await takeRequest() : nil
        let (member, cursor) = state.withLock { state -> (ClusterTopology.Member, String?) in
            if state.epoch != term.epoch {
                state = State(epoch: term.epoch, pacer: state.pacer, status: ScrubStatus(leader: term.coordinator, epoch: term.epoch))
            }
            let member = state.walk.current(of: members, requested: requested)
            state.status.currentNode = member.id.value
            return (member, state.walk.cursor)
        }
        var wait = Duration.milliseconds(50)
        if objects.topology.isUp(member.id) {
            do {
                let (step, suspects) = try await objects.scrubStep(member, after: cursor, limit: settings.pageSize)
                let spentAt = objects.clock.monotonic().nanoseconds
                let nanos = state.withLock { state in
                    state.status.shardsScanned += Int64(step.scanned)
                    state.status.bytesVerified += Int64(step.bytesVerified)
                    state.status.corruptFound += Int64(step.corrupt.count)
                    state.status.suspectsRecorded += Int64(suspects)
                    return state.pacer.spend(Int64(step.bytesVerified), now: spentAt)
                }
                wait = .nanoseconds(max(nanos, 50_000_000))
                if !step.corrupt.isEmpty {
                    logger.warning("scrub found corrupt shards", metadata: ["node.id": "\(member.id)", "shard.count": "\(step.corrupt.count)"])
                }
                walk { $0.paged(next: step.next, members: members.count) }
            } catch {
                state.withLock { $0.status.lastError = "\(member.id): \(error)" }
                walk { $0.skip(members: members.count) }
            }
        } else {
            walk { $0.skip(members: members.count) }
        }
        await publish(term)
        return wait
    }

    /// A node an operator asked to scrub next (`coffre admin scrub --node ID`), taken once.
    private func takeRequest() async -> NodeID? {
        guard let entry = try? await objects.metadata.get(Keyspace.scrubRequest) else { return nil }
        _ = try? await objects.metadata.commit(if: [.revision(entry.key, entry.modRevision)], then: [.delete(entry.key)])
        return try? NodeID(String(decoding: entry.value, as: UTF8.self))
    }

    private func walk(_ move: (inout NodeWalk) -> Void) {
        state.withLock { state in
            move(&state.walk)
            state.status.passesCompleted = state.walk.passesCompleted
        }
    }

    private func publish(_ term: LeaderTerm) async {
        let now = objects.clock.monotonic()
        let status: ScrubStatus? = state.withLock { state in
            guard state.published.take(now: now) else { return nil }
            state.status.updatedAt = objects.clock.wallMillis()
            return state.status
        }
        guard let status else { return }
        _ = try? await objects.metadata.commit(if: [term.fence], then: [.putJSON(Keyspace.scrubStatus, status)])
    }
}
