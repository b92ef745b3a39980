public import CoffreModel
import Foundation
public import Logging
public import Metadata
public import ServiceLifecycle
import Synchronization

/// One term of leadership: who leads, in which epoch, and the revision at which the leader
/// record was written — the fence every decision of the term carries.
public struct LeaderTerm: Hashable, Sendable {
    public let coordinator: String
    public let epoch: Int64
    /// Revision of `Keyspace.leader` when this term began. A commit made for the term
    /// requires the record unchanged since (`fence`), so a former leader that was paused
    /// past its lease and then resumed cannot apply a stale decision: a new leader has
    /// rewritten the record meanwhile.
    public let revision: Int64
    let lease: LeaseID

    /// The condition that makes a commit this term's, and only this term's.
    public var fence: MetadataCondition { .revision(Keyspace.leader, revision) }
}

/// What the leader record says (the JSON value of `Keyspace.leader`).
public struct LeaderRecord: Codable, Hashable, Sendable {
    public let coordinator: String
    public let epoch: Int64
    /// Milliseconds since 1970 when the term began.
    public let since: Int64
}

/// Elects one coordinator to run the background work (repair, scrub scheduling, garbage
/// collection), through a lease in the metadata store.
///
/// The leader record lives under a lease that the leader renews every `ttl / 3`; when the
/// leader dies or is cut off, the lease expires and any coordinator takes the record with a
/// transaction that requires it absent, taking the next epoch (`Keyspace.leaderEpoch`, also
/// compared). With embedded metadata the single coordinator elects itself the same way.
///
/// Follows etcd's own election recipe (`concurrency.Election`: a key under a lease, created
/// only if absent); departs from it in waiting by polling every `ttl / 3` instead of a watch,
/// which bounds a takeover by ttl + ttl / 3 and needs no stream per coordinator.
public final class LeaderElection: Service, Sendable {
    public let coordinator: String
    public let ttlSeconds: Int
    let metadata: any MetadataStore
    let logger: Logger
    let clock: WorkClock
    private let term = Mutex<LeaderTerm?>(nil)

    public init(coordinator: String, metadata: any MetadataStore, ttlSeconds: Int, logger: Logger, clock: WorkClock = .system) {
        precondition(ttlSeconds >= 1)
        self.clock = clock
        self.coordinator = coordinator
        self.metadata = metadata
        self.ttlSeconds = ttlSeconds
        self.logger = logger
    }

    /// This coordinator's term, when it leads (as last checked: the fence decides).
    public var current: LeaderTerm? { term.withLock { $0 } }
    private let sidelined = Mutex(false)

    /// The leader as the metadata store says, whoever it is.
    public func leader() async throws(MetadataError) -> LeaderRecord? {
        guard let entry = try await metadata.get(Keyspace.leader) else { return nil }
        return try? JSONDecoder().decode(LeaderRecord.self, from: Data(entry.value))
    }

    public func run() async throws {
        let interval = Duration.milliseconds(ttlSeconds * 1000 / 3)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await step()
            await clock.sleep(interval)
        }
        // Hand over at once on a clean stop rather than after the lease runs out.
        if let ended = term.withLock({ current in defer { current = nil }; return current }) {
            try? await metadata.revokeLease(ended.lease)
        }
    }

    /// Steps down now: the lease is revoked, so another coordinator can take over at once.
    public func resign() async {
        guard let ended = term.withLock({ current in defer { current = nil }; return current }) else { return }
        try? await metadata.revokeLease(ended.lease)
        logger.notice("resigned", metadata: ["leader.epoch": "\(ended.epoch)"])
    }

    /// A coordinator a drill stops or blackholes takes no part in the election: it resigns if
    /// it leads and does not campaign until the fault is lifted.
    public func setSidelined(_ value: Bool) async {
        let was = sidelined.withLock { sidelined in defer { sidelined = value }; return sidelined }
        if value && !was { await resign() }
    }

    /// One round: renew when leading, otherwise campaign if nobody leads.
    public func step() async {
        if sidelined.withLock({ $0 }) {
            await resign()
            return
        }
        if let held = current {
            do {
                try await metadata.renewLease(held.lease)
                // The record may be gone or another's (lease lost and retaken meanwhile).
                guard let entry = try await metadata.get(Keyspace.leader), entry.modRevision == held.revision else {
                    return lose(held, "the leader record changed")
                }
            } catch {
                lose(held, error.message)
            }
            return
        }
        do {
            try await campaign()
        } catch {
            logger.warning("leader campaign failed", metadata: ["error": "\(error.message)"])
        }
    }

    private func campaign() async throws(MetadataError) {
        guard try await metadata.get(Keyspace.leader) == nil else { return }
        let last = try await metadata.get(Keyspace.leaderEpoch)
        let epoch = (last.flatMap { Int64(String(decoding: $0.value, as: UTF8.self)) } ?? 0) + 1
        let lease = try await metadata.grantLease(ttlSeconds: ttlSeconds)
        let record = LeaderRecord(coordinator: coordinator, epoch: epoch, since: clock.wallMillis())
        let epochCondition: MetadataCondition = last.map { .revision(Keyspace.leaderEpoch, $0.modRevision) } ?? .absent(Keyspace.leaderEpoch)
        let revision = try await metadata.commit(
            if: [.absent(Keyspace.leader), epochCondition],
            then: [
                .put(Keyspace.leader, Array(try! JSONEncoder().encode(record)), lease: lease),
                .put(Keyspace.leaderEpoch, Array(String(epoch).utf8)),
            ])
        guard let revision else {
            try? await metadata.revokeLease(lease)
            return
        }
        term.withLock { $0 = LeaderTerm(coordinator: coordinator, epoch: epoch, revision: revision, lease: lease) }
        logger.notice("leading", metadata: ["leader.epoch": "\(epoch)", "coordinator.id": "\(coordinator)"])
    }

    private func lose(_ held: LeaderTerm, _ why: String) {
        term.withLock { if $0 == held { $0 = nil } }
        logger.warning("no longer leading", metadata: ["leader.epoch": "\(held.epoch)", "reason": "\(why)"])
    }
}
