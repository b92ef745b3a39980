public import CoffreModel
import Foundation
public import Logging
public import Metadata
public import ServiceLifecycle
import Synchronization

/// The rolling window transfer is counted over, cut into `buckets` buckets of equal length:
/// the arithmetic the meter, `whoami` and the refusals share (pure; times are milliseconds
/// since 1970, passed in).
///
/// At a time `t` the window counts the bucket `t` falls in and the 29 before it, so it spans
/// between 29 and 30 bucket lengths: with the default 30 days, bytes stop counting 29 to 30
/// days after they were served, a day at a time.
public struct TransferWindow: Sendable, Hashable {
    public static let buckets: Int64 = 30
    public let milliseconds: Int64

    public init(seconds: Int) { milliseconds = Int64(seconds) * 1000 }

    public var bucketMilliseconds: Int64 { max(1, milliseconds / Self.buckets) }
    public func bucket(at time: Int64) -> Int64 { time / bucketMilliseconds }
    /// The oldest bucket still counted at `time`.
    public func oldest(at time: Int64) -> Int64 { bucket(at: time) - Self.buckets + 1 }
    /// When bucket `bucket` stops counting.
    public func expiry(of bucket: Int64) -> Int64 { (bucket + Self.buckets) * bucketMilliseconds }

    /// Whether bucket `bucket` counts at `time`. One ahead of `time` counts for nothing: it
    /// was numbered under a shorter window (`transfer_window_seconds` raised), and is dropped.
    public func counts(_ bucket: Int64, at time: Int64) -> Bool { bucket >= oldest(at: time) && bucket <= self.bucket(at: time) }

    /// Bytes counted at `time` (buckets by index -> bytes; the others are ignored).
    public func used(_ usage: [Int64: Int64], at time: Int64) -> Int64 {
        usage.reduce(0) { $0 + (counts($1.key, at: time) ? $1.value : 0) }
    }

    /// When the oldest bucket that counts bytes stops counting: when the use shown first
    /// drops. Nil when nothing counts.
    public func resetsAt(_ usage: [Int64: Int64], at time: Int64) -> Int64? {
        usage.filter { counts($0.key, at: time) && $0.value > 0 }.keys.min().map(expiry(of:))
    }

    /// Milliseconds from `time` until `wanted` more bytes fit under `limit`, as buckets leave
    /// the window and if nothing more is served meanwhile: 0 when they fit now, nil when
    /// they never will (`wanted` over `limit`).
    public func wait(_ usage: [Int64: Int64], at time: Int64, limit: Int64, wanted: Int64) -> Int64? {
        guard wanted > 0 else { return 0 }
        guard wanted <= limit else { return nil }
        var used = used(usage, at: time)
        if used + wanted <= limit { return 0 }
        for bucket in usage.keys.filter({ counts($0, at: time) }).sorted() {
            used -= usage[bucket]!
            if used + wanted <= limit { return max(1, expiry(of: bucket) - time) }
        }
        return nil
    }
}

/// Counts the bytes each account's files serve, without a metadata write per request
/// (Docs/policy.md, "Transfer quotas").
///
/// Each coordinator adds what it served into memory and, every `flushInterval`, adds it to
/// its own key per account and bucket (`Keyspace.transfer`: only it writes that key, so
/// coordinators never contend, and it knows what its keys hold). An account's use is what
/// the other coordinators' keys hold for the buckets in the window, listed at most once per
/// `flushInterval` per account, plus this coordinator's own counts (written or not), plus the
/// bytes of the downloads it admitted that are still being sent. So downloads through one
/// coordinator are held to the quota to the byte, and a coordinator sees what the others
/// served at most about two flush intervals late: that is how far past its quota an account
/// downloading through several coordinators at once can go.
public final class TransferMeter: Service, Sendable {
    public let window: TransferWindow
    let coordinator: String
    let metadata: any MetadataStore
    let flushInterval: Duration
    let clock: WorkClock
    let logger: Logger

    struct Others {
        /// The other coordinators' bytes by bucket, as listed.
        var usage: [Int64: Int64]
        var readAt: Int64
    }

    /// A write whose outcome is unknown (the store failed after it may have applied it): its
    /// key is read at the next flush, and the bytes added again only if it did not apply.
    struct Uncertain {
        var target: Int64
        var bytes: Int64
    }

    struct Reserved {
        var account: String
        var bytes: Int64
        var at: Int64
    }

    struct State {
        /// Served here, not yet written.
        var pending: [String: [Int64: Int64]] = [:]
        /// Being written by the flush under way (until its key's outcome is known).
        var flushing: [String: [Int64: Int64]] = [:]
        /// What this coordinator's keys hold, as far as it knows (written by it, or listed).
        var own: [String: [Int64: Int64]] = [:]
        var uncertain: [String: [Int64: Uncertain]] = [:]
        var others: [String: Others] = [:]
        /// Bytes of admitted downloads not sent yet, by admission.
        var reserved: [UInt64: Reserved] = [:]
        var nextReservation: UInt64 = 0
        /// Keys of buckets out of the window, seen when listing: deleted at the next flush.
        var expired: Set<String> = []
        var flushes = 0
        var flushFailures = 0
    }

    private let state = Mutex(State())

    public init(coordinator: String, metadata: any MetadataStore, window: TransferWindow, flushInterval: Duration, clock: WorkClock, logger: Logger) {
        self.coordinator = coordinator
        self.metadata = metadata
        self.window = window
        self.flushInterval = flushInterval
        self.clock = clock
        self.logger = logger
    }

    private var flushMilliseconds: Int64 { Int64(flushInterval / .milliseconds(1)) }
    /// An admission whose body never ran (the client left first) stops counting after this.
    static let reservationLifetimeMilliseconds: Int64 = 10 * 60 * 1000

    /// `bytes` of `account`'s files served now, outside an admission.
    public func record(_ account: String, bytes: Int64) {
        guard bytes > 0 else { return }
        let bucket = window.bucket(at: clock.wallMillis())
        state.withLock { $0.pending[account, default: [:]][bucket, default: 0] += bytes }
    }

    /// The account's bytes by bucket: the other coordinators' as listed at most a flush
    /// interval ago (listed now otherwise), this coordinator's, and (in the current bucket) the
    /// bytes its admitted downloads have still to send.
    public func usage(_ account: String) async throws(MetadataError) -> [Int64: Int64] {
        try await refresh(account)
        let time = clock.wallMillis()
        return state.withLock { Self.total($0, account, bucket: window.bucket(at: time)) }
    }

    /// Lists the other coordinators' counts of `account` unless listed less than a flush
    /// interval ago.
    private func refresh(_ account: String) async throws(MetadataError) {
        let time = clock.wallMillis()
        guard state.withLock({ state in state.others[account].map { time - $0.readAt >= flushMilliseconds } ?? true }) else { return }
        var entries: [MetadataEntry] = []
        var after: String?
        repeat {
            let page = try await metadata.list(prefix: Keyspace.transfers(account), after: after, limit: Limits.metadataListPageMax)
            entries += page
            after = page.count == Limits.metadataListPageMax ? page.last?.key : nil
        } while after != nil
        var others: [Int64: Int64] = [:]
        var own: [Int64: Int64] = [:]
        var expired: [String] = []
        for entry in entries {
            // transfer/ACCOUNT/BUCKET/COORDINATOR -> decimal bytes; anything else is skipped.
            let parts = entry.key.dropFirst(Keyspace.transfers(account).utf8.count).split(separator: "/")
            guard parts.count == 2, let bucket = Int64(parts[0]), let bytes = Int64(String(decoding: entry.value, as: UTF8.self)), bytes >= 0 else {
                continue
            }
            // Only buckets that left the window are deleted; one ahead of this clock (another
            // coordinator's clock, a window changed) is left alone and not counted.
            if bucket < window.oldest(at: time) {
                expired.append(entry.key)
            } else if window.counts(bucket, at: time) {
                if parts[1] == coordinator { own[bucket] = bytes } else { others[bucket, default: 0] += bytes }
            }
        }
        state.withLock { state in
            state.others[account] = Others(usage: others, readAt: time)
            // This coordinator's own keys as listed count only where it has not written since
            // it started (it knows better what it wrote after).
            for (bucket, bytes) in own where state.own[account]?[bucket] == nil { state.own[account, default: [:]][bucket] = bytes }
            state.expired.formUnion(expired.prefix(Limits.metadataListPageMax))
        }
    }

    private static func total(_ state: State, _ account: String, bucket: Int64) -> [Int64: Int64] {
        var total = state.others[account]?.usage ?? [:]
        for extra in [state.own[account], state.pending[account], state.flushing[account], state.uncertain[account]?.mapValues(\.bytes)] {
            for (bucket, bytes) in extra ?? [:] { total[bucket, default: 0] += bytes }
        }
        let reserved = state.reserved.values.reduce(Int64(0)) { $0 + ($1.account == account ? $1.bytes : 0) }
        if reserved > 0 { total[bucket, default: 0] += reserved }
        return total
    }

    /// What `admit` decided.
    public enum Admission: Sendable {
        case admitted(Reservation)
        /// Milliseconds until the bytes fit (nil: never, they are more than the whole quota).
        case refused(waitMilliseconds: Int64?)
    }

    /// Admits a download of `wanted` bytes of `account`'s files when it fits under `limit` with
    /// everything counted and every download admitted before it still being sent, and
    /// reserves its bytes until they are sent (`Reservation.sent`) or it ends
    /// (`Reservation.end`): concurrent downloads cannot all pass one check.
    public func admit(_ account: String, wanted: Int64, limit: Int64) async throws(MetadataError) -> Admission {
        try await refresh(account)
        let time = clock.wallMillis()
        return state.withLock { state in
            let usage = Self.total(state, account, bucket: window.bucket(at: time))
            guard let wait = window.wait(usage, at: time, limit: limit, wanted: wanted) else { return .refused(waitMilliseconds: nil) }
            guard wait == 0 else { return .refused(waitMilliseconds: wait) }
            state.nextReservation += 1
            state.reserved[state.nextReservation] = Reserved(account: account, bytes: wanted, at: time)
            return .admitted(Reservation(meter: self, id: state.nextReservation, account: account))
        }
    }

    /// An admitted download: its bytes count as sent as they are, and what is left of its
    /// reservation is dropped when it ends.
    public final class Reservation: Sendable {
        let meter: TransferMeter
        let id: UInt64
        let account: String

        init(meter: TransferMeter, id: UInt64, account: String) {
            self.meter = meter
            self.id = id
            self.account = account
        }

        public func sent(_ bytes: Int64) {
            guard bytes > 0 else { return }
            let bucket = meter.window.bucket(at: meter.clock.wallMillis())
            meter.state.withLock { state in
                state.pending[account, default: [:]][bucket, default: 0] += bytes
                if let left = state.reserved[id]?.bytes { state.reserved[id]?.bytes = max(0, left - bytes) }
            }
        }

        public func end() { _ = meter.state.withLock { $0.reserved.removeValue(forKey: id) } }
    }

    /// Writes what was served since the last flush; what fails to be written is kept for the
    /// next. Deletes the expired keys seen, forgets counts listed long ago, and drops
    /// admissions whose body never ran.
    public func flush() async {
        let batch = state.withLock { state in
            let batch = state.pending
            state.pending = [:]
            state.flushing = batch
            return batch
        }
        var failed = 0
        // A write of unknown outcome is settled even when nothing new was served for it.
        var work = batch
        for (account, buckets) in state.withLock({ $0.uncertain }) {
            for bucket in buckets.keys where work[account]?[bucket] == nil { work[account, default: [:]][bucket] = 0 }
        }
        for (account, buckets) in work {
            for (bucket, bytes) in buckets where !(await add(bytes, account: account, bucket: bucket)) {
                failed += 1
            }
        }
        let time = clock.wallMillis()
        let expired = state.withLock { state in
            state.flushing = [:]
            state.flushes += 1
            state.flushFailures += failed
            // Counts not listed for ten intervals are listed again when next needed; this
            // coordinator's own counts of buckets out of the window go.
            state.others = state.others.filter { time - $0.value.readAt < 10 * flushMilliseconds }
            let oldest = window.oldest(at: time)
            for account in Array(state.own.keys) {
                state.own[account] = state.own[account]?.filter { $0.key >= oldest }
                if state.own[account]?.isEmpty == true { state.own[account] = nil }
            }
            state.reserved = state.reserved.filter { time - $0.value.at < Self.reservationLifetimeMilliseconds }
            let expired = state.expired
            state.expired = []
            return expired
        }
        for key in expired { try? await metadata.delete(key) }
        if failed > 0 { logger.warning("transfer counts not written; kept for the next flush", metadata: ["transfer.failed": "\(failed)"]) }
    }

    /// Adds `bytes` to this coordinator's count of `account` in `bucket`, settling first a
    /// write of unknown outcome to the same key. Only this coordinator writes the key, so its
    /// value tells whether an earlier write applied (it only grows). False when the bytes are
    /// not known to be written (kept for the next flush).
    private func add(_ bytes: Int64, account: String, bucket: Int64) async -> Bool {
        let key = Keyspace.transfer(account, bucket: bucket, coordinator: coordinator)
        var bytes = bytes
        var target: Int64 = 0
        for _ in 0..<5 {
            let current: MetadataEntry?
            do { current = try await metadata.get(key) } catch { break }
            let value = current.flatMap { Int64(String(decoding: $0.value, as: UTF8.self)) } ?? 0
            state.withLock { state in
                if let unsure = state.uncertain[account]?.removeValue(forKey: bucket), value < unsure.target { bytes += unsure.bytes }
                if state.uncertain[account]?.isEmpty == true { state.uncertain[account] = nil }
                state.own[account, default: [:]][bucket] = value
            }
            guard bytes > 0 else {
                state.withLock { $0.flushing[account]?[bucket] = nil }
                return true
            }
            target = value + bytes
            let condition: MetadataCondition = current.map { .revision(key, $0.modRevision) } ?? .absent(key)
            do {
                if try await metadata.commit(if: [condition], then: [.put(key, Array(String(target).utf8))]) != nil {
                    state.withLock { state in
                        state.own[account, default: [:]][bucket] = target
                        state.flushing[account]?[bucket] = nil
                    }
                    return true
                }
                // Refused: another attempt may have applied it (a retry on another endpoint);
                // the next read says (the value is then the target, and nothing is left to add).
                state.withLock { state in
                    state.uncertain[account, default: [:]][bucket] = Uncertain(target: target, bytes: bytes)
                    state.flushing[account]?[bucket] = nil
                }
                bytes = 0
            } catch {
                state.withLock { state in
                    state.uncertain[account, default: [:]][bucket] = Uncertain(target: target, bytes: bytes)
                    state.flushing[account]?[bucket] = nil
                }
                return false
            }
        }
        state.withLock { state in
            state.flushing[account]?[bucket] = nil
            if bytes > 0 { state.pending[account, default: [:]][bucket, default: 0] += bytes }
        }
        return false
    }

    /// Flushes every `flushInterval`, and once more on the way out.
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // A stop does not wait out the interval: the last flush below runs at once.
            await cancelWhenGracefulShutdown { [clock, flushInterval] in await clock.sleep(flushInterval) }
            await flush()
        }
        await flush()
    }

    /// Flushes done and counts that failed to be written, since start.
    public var flushCounts: (flushes: Int, failures: Int) { state.withLock { ($0.flushes, $0.flushFailures) } }
}
