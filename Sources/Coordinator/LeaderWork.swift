import CoffreAPI
import CoffreModel
import Foundation
import Metadata
import Placement
import Synchronization

/// Where a leader's pass over every node stands (the collector's, the scrub schedule's): the
/// node being walked, a page at a time, and how many passes are complete. A value: the
/// services keep it under their lock and step it.
struct NodeWalk: Sendable {
    private(set) var nodeIndex = 0
    /// The page to ask for next on the current node (nil: its first).
    private(set) var cursor: String?
    private(set) var passesCompleted = 0

    /// The node to walk now; `requested` (an operator's wish) goes next, and the pass goes on
    /// from there.
    mutating func current(of members: [ClusterTopology.Member], requested: NodeID? = nil) -> ClusterTopology.Member {
        if let requested, let index = members.firstIndex(where: { $0.id == requested }) {
            nodeIndex = nodeIndex - nodeIndex % members.count + index
        }
        return members[nodeIndex % members.count]
    }

    /// After a page: on to `next` on this node, or to the next node when there is none.
    mutating func paged(next: String?, members count: Int) {
        if let next { cursor = next } else { skip(members: count) }
    }

    /// On to the next node (this one is done, down or failing).
    mutating func skip(members count: Int) {
        cursor = nil
        nodeIndex += 1
        if nodeIndex % count == 0 { passesCompleted += 1 }
    }
}

/// When a leader's service last published its status: at most once per interval.
struct PublishThrottle: Sendable {
    private var last: Duration?

    /// True (and counted as published) when `interval` has passed since the last time.
    mutating func take(now: Duration, interval: Duration = .seconds(1)) -> Bool {
        if let last, now - last < interval { return false }
        last = now
        return true
    }
}

extension MetadataMutation {
    /// A put of `value` as JSON (keys sorted: the same value, the same bytes).
    static func putJSON(_ key: String, _ value: some Encodable) -> MetadataMutation {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return .put(key, Array(try! encoder.encode(value)))
    }
}

/// The status of a leader service that does paced work: it starts empty each term, and
/// publishes its rate.
protocol PacedStatus: LeaderPublished {
    init(leader: String?, epoch: Int64)
    var rateBytesPerSecond: Double { get set }
    var updatedAt: Int64 { get set }
}

extension RebalanceStatus: PacedStatus {}
extension PolicyStatus: PacedStatus {}

/// The state every paced leader service keeps (the rebalancer's, the re-encoder's): its
/// status for the current term, the budget's pacer, the rate meter, and when it last
/// published. One lock around all of it.
final class PacedWork<Status: PacedStatus>: Sendable {
    struct State {
        var epoch: Int64?
        var pacer: Pacer
        var meter = RateMeter()
        var status: Status
        var published = PublishThrottle()
    }

    private let state: Mutex<State>
    let clock: WorkClock
    private var nanoseconds: Int64 { clock.monotonic().nanoseconds }

    init(budgetBytesPerSecond: Int64, clock: WorkClock) {
        self.clock = clock
        state = Mutex(State(pacer: Pacer(bytesPerSecond: budgetBytesPerSecond), status: Status(leader: nil, epoch: 0)))
    }

    func withLock<R: Sendable>(_ body: (inout State) -> R) -> R { state.withLock { body(&$0) } }

    /// The status, with the rate over the last seconds.
    func status() -> Status {
        let now = nanoseconds
        return state.withLock { state in
            state.status.rateBytesPerSecond = state.meter.rate(now: now)
            return state.status
        }
    }

    /// A new term starts from an empty status.
    func begin(_ term: LeaderTerm) {
        state.withLock { state in
            guard state.epoch != term.epoch else { return }
            state.epoch = term.epoch
            state.status = Status(leader: term.coordinator, epoch: term.epoch)
        }
    }

    /// Follows the budget operators set (`Keyspace.repairBudget`), if any.
    func followBudget(_ metadata: any MetadataStore) async {
        guard let budget = await metadata.repairBudget() else { return }
        let now = nanoseconds
        state.withLock { if $0.pacer.bytesPerSecond != budget { $0.pacer.setBudget(budget, now: now) } }
    }

    /// Waits until the budget allows `bytes` more.
    func pace(_ bytes: Int64) async {
        let now = nanoseconds
        let wait = state.withLock { $0.pacer.spend(bytes, now: now) }
        if wait > 0 { await clock.sleep(.nanoseconds(wait)) }
    }

    /// Counts bytes done for the rate.
    func record(_ bytes: Int64) {
        let now = nanoseconds
        state.withLock { $0.meter.record(bytes, now: now) }
    }

    /// Publishes the status under `key` (at most once a second), under the term's fence.
    func publish(_ term: LeaderTerm, key: String, to metadata: any MetadataStore) async {
        let now = clock.monotonic()
        let nanos = nanoseconds
        let wall = clock.wallMillis()
        let status: Status? = state.withLock { state in
            guard state.published.take(now: now) else { return nil }
            state.status.rateBytesPerSecond = state.meter.rate(now: nanos)
            state.status.updatedAt = wall
            return state.status
        }
        guard let status else { return }
        _ = try? await metadata.commit(if: [term.fence], then: [.putJSON(key, status)])
    }
}

/// A job that passes over every manifest, a page at a time, until a pass does no work (a
/// started rebalance, a re-encoding): its record holds the pass and the cursor.
protocol ManifestPassJob: Codable, Sendable {
    var pass: Int { get set }
    var cursor: String? { get set }
    /// Work done (or found) in this pass: a pass with none ends the job.
    var workThisPass: Int { get set }
}

extension RebalanceStatus.Job: ManifestPassJob {
    var workThisPass: Int {
        get { movesThisPass }
        set { movesThisPass = newValue }
    }
}

extension PolicyStatus.Job: ManifestPassJob {
    var workThisPass: Int {
        get { foundThisPass }
        set { foundThisPass = newValue }
    }
}

extension MetadataStore {
    /// One page of the job recorded under `key`: `work` gets the job and the next page of
    /// manifests; then the cursor moves on (at the end of a pass, the job ends if the pass did
    /// no work, or another pass starts), written under the leader's fence and conditional on
    /// the record as read, so a cancel (its deletion) meanwhile wins and a new leader resumes
    /// at the page where this one stopped. Nil when no job is recorded.
    func stepManifestPass<Job: ManifestPassJob>(
        key: String, term: LeaderTerm, pageSize: Int, work: (inout Job, [MetadataEntry]) async throws(CoordinatorError) -> Void
    ) async throws(CoordinatorError) -> (job: Job, finished: Bool, committed: Bool)? {
        let entry: MetadataEntry?
        do { entry = try await get(key) } catch { throw CoordinatorError(error.code, error.message) }
        guard let entry, var job = try? JSONDecoder().decode(Job.self, from: Data(entry.value)) else { return nil }
        let page: [MetadataEntry]
        do { page = try await list(prefix: Keyspace.manifests, after: job.cursor, limit: pageSize) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        try await work(&job, page)
        let finished = page.count < pageSize && job.workThisPass == 0
        if page.count == pageSize {
            job.cursor = page.last?.key
        } else if !finished {
            job.pass += 1
            job.cursor = nil
            job.workThisPass = 0
        }
        let mutation: MetadataMutation = finished ? .delete(key) : .putJSON(key, job)
        let committed: Int64?
        do { committed = try await commit(if: [term.fence, .revision(entry.key, entry.modRevision)], then: [mutation]) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        return (job, finished, committed != nil)
    }
}
