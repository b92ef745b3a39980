public import CoffreAPI
import CoffreModel
import Foundation
public import Logging
import Metadata
import NodeClient
public import ServiceLifecycle
import Synchronization

/// The leader's garbage collector: walks every node's shards, a page per step, and deletes
/// those no committed manifest references once they are older than the grace period —
/// shards of uploads that never committed (a coordinator killed mid-upload), of deleted
/// files whose deletes failed, replaced by repair, or left on a node that came back.
///
/// Never a referenced shard: the manifest is read after the shard was listed, and the
/// delete is a compare-and-delete on the shard's creation time, so a shard written again
/// after the decision (a repair that put it back on this node) stays. An upload's commit is
/// refused when its shards could have been judged garbage (`ObjectWriter.commitGuard`).
public final class GarbageCollector: Service, Sendable {
    public struct Settings: Sendable {
        public var grace: Duration
        /// Shards listed per step (one page of one node).
        public var pageSize: Int
        /// Pause between steps: the collector's budget.
        public var pause: Duration

        public init(grace: Duration, pageSize: Int = 500, pause: Duration = .milliseconds(200)) {
            self.grace = grace
            self.pageSize = pageSize
            self.pause = pause
        }
    }

    struct State {
        var epoch: Int64?
        var walk = NodeWalk()
        var status: CollectorStatus
        var published = PublishThrottle()
    }

    let objects: ObjectStore
    let election: LeaderElection
    let settings: Settings
    let logger: Logger
    /// The bin purge's figures, published with the collector's.
    let binPurge: @Sendable () -> BinPurgeStatus?
    private let state: Mutex<State>

    public init(
        objects: ObjectStore, election: LeaderElection, settings: Settings, logger: Logger, binPurge: @escaping @Sendable () -> BinPurgeStatus? = { nil }
    ) {
        self.binPurge = binPurge
        self.objects = objects
        self.election = election
        self.settings = settings
        self.logger = logger
        state = Mutex(State(status: CollectorStatus(
            leader: nil, epoch: 0, graceSeconds: settings.grace.components.seconds, updatedAt: 0)))
    }

    var metadata: any MetadataStore { objects.metadata }

    public func status() -> CollectorStatus {
        var status = state.withLock { $0.status }
        status.binPurge = binPurge()
        return status
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await step()
            await objects.clock.sleep(settings.pause)
        }
    }

    /// One page of one node; false when not leading or the node did not answer.
    @discardableResult
    public func step(now: Int64? = nil) async -> Bool {
        let now = now ?? objects.clock.wallMillis()
        guard let term = election.current else { return false }
        let members = objects.topology.members
        guard !members.isEmpty else { return false }
        let (member, cursor) = state.withLock { state -> (ClusterTopology.Member, String?) in
            if state.epoch != term.epoch {
                state = State(epoch: term.epoch, status: CollectorStatus(
                    leader: term.coordinator, epoch: term.epoch, graceSeconds: settings.grace.components.seconds, updatedAt: 0))
            }
            let member = state.walk.current(of: members)
            state.status.currentNode = member.id.value
            return (member, state.walk.cursor)
        }
        guard objects.topology.isUp(member.id) else {
            walk { $0.skip(members: members.count) }
            return false
        }
        do {
            let page = try await objects.nodes.list(base: member.url, prefix: [], after: cursor, limit: settings.pageSize)
            var manifests: [String: ObjectManifest?] = [:]
            for shard in page.shards {
                try await collect(shard, on: member, now: now, manifests: &manifests)
            }
            state.withLock { $0.status.shardsScanned += Int64(page.shards.count) }
            walk { $0.paged(next: page.next, members: members.count) }
        } catch {
            state.withLock { $0.status.lastError = "\(member.id): \(error)" }
            walk { $0.skip(members: members.count) }
        }
        await publish(term)
        return true
    }

    private func walk(_ move: (inout NodeWalk) -> Void) {
        state.withLock { state in
            move(&state.walk)
            state.status.passesCompleted = state.walk.passesCompleted
        }
    }

    /// Judges one listed shard, and deletes it when it is garbage.
    private func collect(_ shard: ShardInfo, on member: ClusterTopology.Member, now: Int64, manifests: inout [String: ObjectManifest?]) async throws {
        let graceMs = Int64(settings.grace.components.seconds) * 1000 + settings.grace.components.attoseconds / 1_000_000_000_000_000
        guard now - shard.createdAt >= graceMs else { return }
        guard let bytes = Hex.decode(shard.key), let place = ShardPlace(String(decoding: bytes, as: UTF8.self)) else { return }
        if manifests[place.objectId] == nil {
            do { manifests[place.objectId] = .some(try await manifestIfAny(place.objectId)) } catch let error as CoordinatorError where error.code == .corrupt {
                // Never collect on a guess: a corrupt manifest keeps its object's shards, and
                // the scan goes on past them.
                return
            }
        }
        if let manifest = manifests[place.objectId]! {
            // Referenced: the segment's current encoding names this node for this shard.
            let segment = manifest.segments.first { $0.index == place.segment && ($0.generation ?? 0) == place.generation }
            let owner = segment?.shards.first { $0.index == place.shard }?.node
            guard owner != member.id else { return }
        } else {
            guard try await intentExpired(place.objectId, now: now, graceMs: graceMs) else { return }
        }
        var refused = false
        do {
            try await objects.nodes.delete(base: member.url, key: bytes, ifCreatedAt: shard.createdAt)
        } catch {
            guard error.code == .conflict else { throw error }
            refused = true
        }
        state.withLock { state in
            if refused {
                state.status.deletesRefused += 1
            } else {
                state.status.shardsDeleted += 1
                state.status.bytesReclaimed += shard.length
            }
        }
        if !refused { objects.topology.collected(bytes: shard.length, from: member.id) }
    }

    private func manifestIfAny(_ objectId: String) async throws -> ObjectManifest? {
        do {
            return try await objects.manifest(objectId)
        } catch {
            guard error.code == .notFound else { throw error }
            return nil
        }
    }

    /// True when no upload of this object is running: no intent, or one left to go stale
    /// (then removed, by compare-and-swap, so that the upload's commit fails).
    private func intentExpired(_ objectId: String, now: Int64, graceMs: Int64) async throws -> Bool {
        guard let entry = try await metadata.get(Keyspace.upload(objectId)) else { return true }
        let refreshed = Int64(String(decoding: entry.value, as: UTF8.self)) ?? 0
        guard now - refreshed >= graceMs else { return false }
        return try await metadata.commit(if: [.revision(entry.key, entry.modRevision)], then: [.delete(entry.key)]) != nil
    }

    private func publish(_ term: LeaderTerm) async {
        let now = objects.clock.monotonic()
        let status: CollectorStatus? = state.withLock { state in
            guard state.published.take(now: now) else { return nil }
            state.status.updatedAt = objects.clock.wallMillis()
            return state.status
        }
        guard var status else { return }
        status.binPurge = binPurge()
        _ = try? await metadata.commit(if: [term.fence], then: [.putJSON(Keyspace.collectorStatus, status)])
    }
}

/// Where a shard belongs, parsed from its key `<object>/<segment>/<shard>[/<generation>]`.
struct ShardPlace {
    let objectId: String
    let segment: Int
    let shard: Int
    let generation: Int

    init?(_ key: String) {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3 || parts.count == 4, !parts[0].isEmpty, let segment = Int(parts[1]), let shard = Int(parts[2]), segment >= 0,
            shard >= 0
        else { return nil }
        let generation = parts.count == 4 ? Int(parts[3]) : 0
        guard let generation, generation >= 0, parts.count == 3 || generation > 0 else { return nil }
        objectId = String(parts[0])
        self.segment = segment
        self.shard = shard
        self.generation = generation
    }
}
