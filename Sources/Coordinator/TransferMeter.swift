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
/// Each coordinator adds what it served into memory (`record`) and, every `flushInterval`,
/// adds it to its own key per account and bucket (`Keyspace.transfer`: only it writes that
/// key, so coordinators never contend). An account's use is the sum of every coordinator's
/// keys for the buckets in the window, read at most once per `flushInterval` per account
/// and coordinator, plus what this coordinator served since. So a coordinator sees what
/// the others served at most about two flush intervals late: that is how far past its
/// quota an account downloading through several coordinators at once can go.
public final class TransferMeter: Service, Sendable {
    public let window: TransferWindow
    let coordinator: String
    let metadata: any MetadataStore
    let flushInterval: Duration
    let clock: WorkClock
    let logger: Logger

    struct Stored {
        /// Every coordinator's bytes by bucket, as listed, plus this one's flushes since.
        var usage: [Int64: Int64]
        var readAt: Int64
    }

    struct State {
        /// Served here, not yet written.
        var pending: [String: [Int64: Int64]] = [:]
        /// Being written by the flush under way.
        var flushing: [String: [Int64: Int64]] = [:]
        var stored: [String: Stored] = [:]
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

    /// `bytes` of `account`'s files served now.
    public func record(_ account: String, bytes: Int64) {
        guard bytes > 0 else { return }
        let bucket = window.bucket(at: clock.wallMillis())
        state.withLock { $0.pending[account, default: [:]][bucket, default: 0] += bytes }
    }

    /// The account's bytes by bucket: the shared counts as read at most a flush interval ago
    /// (read now otherwise), plus what this coordinator served since.
    public func usage(_ account: String) async throws(MetadataError) -> [Int64: Int64] {
        let time = clock.wallMillis()
        if let cached = state.withLock({ state in
            state.stored[account].flatMap { time - $0.readAt < flushMilliseconds ? Self.merged(state, account, $0.usage) : nil }
        }) {
            return cached
        }
        let entries = try await metadata.list(prefix: Keyspace.transfers(account), after: nil, limit: Limits.metadataListPageMax)
        var usage: [Int64: Int64] = [:]
        var expired: [String] = []
        for entry in entries {
            // transfer/ACCOUNT/BUCKET/COORDINATOR -> decimal bytes; anything else is skipped.
            let parts = entry.key.dropFirst(Keyspace.transfers(account).utf8.count).split(separator: "/")
            guard parts.count == 2, let bucket = Int64(parts[0]), let bytes = Int64(String(decoding: entry.value, as: UTF8.self)), bytes >= 0 else {
                continue
            }
            if window.counts(bucket, at: time) { usage[bucket, default: 0] += bytes } else { expired.append(entry.key) }
        }
        return state.withLock { state in
            state.stored[account] = Stored(usage: usage, readAt: time)
            state.expired.formUnion(expired.prefix(Limits.metadataListPageMax))
            return Self.merged(state, account, usage)
        }
    }

    private static func merged(_ state: State, _ account: String, _ usage: [Int64: Int64]) -> [Int64: Int64] {
        var total = usage
        for extra in [state.pending[account], state.flushing[account]] {
            for (bucket, bytes) in extra ?? [:] { total[bucket, default: 0] += bytes }
        }
        return total
    }

    /// Writes what was served since the last flush; what fails to be written is kept for the
    /// next. Deletes the expired keys seen, and forgets counts read long ago.
    public func flush() async {
        let batch = state.withLock { state in
            let batch = state.pending
            state.pending = [:]
            state.flushing = batch
            return batch
        }
        var failed = 0
        for (account, buckets) in batch {
            for (bucket, bytes) in buckets {
                let written = await add(bytes, Keyspace.transfer(account, bucket: bucket, coordinator: coordinator))
                state.withLock { state in
                    state.flushing[account]?[bucket] = nil
                    if written {
                        state.stored[account]?.usage[bucket, default: 0] += bytes
                    } else {
                        state.pending[account, default: [:]][bucket, default: 0] += bytes
                    }
                }
                if !written { failed += 1 }
            }
        }
        let time = clock.wallMillis()
        let expired = state.withLock { state in
            state.flushing = [:]
            state.flushes += 1
            state.flushFailures += failed
            // Counts not read for ten intervals are read again when next needed.
            state.stored = state.stored.filter { time - $0.value.readAt < 10 * flushMilliseconds }
            let expired = state.expired
            state.expired = []
            return expired
        }
        for key in expired { try? await metadata.delete(key) }
        if failed > 0 { logger.warning("transfer counts not written; kept for the next flush", metadata: ["transfer.failed": "\(failed)"]) }
    }

    /// Adds `bytes` to the decimal count at `key` (compare-and-swap: a retried write never
    /// adds twice).
    private func add(_ bytes: Int64, _ key: String) async -> Bool {
        for _ in 0..<5 {
            do {
                let current = try await metadata.get(key)
                let old = current.flatMap { Int64(String(decoding: $0.value, as: UTF8.self)) } ?? 0
                let condition: MetadataCondition = current.map { .revision(key, $0.modRevision) } ?? .absent(key)
                if try await metadata.commit(if: [condition], then: [.put(key, Array(String(old + bytes).utf8))]) != nil { return true }
            } catch {
                return false
            }
        }
        return false
    }

    /// Flushes every `flushInterval`, and once more on the way out.
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await clock.sleep(flushInterval)
            await flush()
        }
        await flush()
    }

    /// Flushes done and counts that failed to be written, since start.
    public var flushCounts: (flushes: Int, failures: Int) { state.withLock { ($0.flushes, $0.flushFailures) } }
}
