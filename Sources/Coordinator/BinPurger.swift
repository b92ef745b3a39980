public import CoffreAPI
public import CoffreModel
import Foundation
public import Logging
public import Metadata
public import ServiceLifecycle
import Synchronization

/// Which rubbish bin entries are due for purging: pure (keys, time and retention in, entries
/// out), so that tests drive it without a cluster.
public enum BinPurge {
    public struct Due: Hashable, Sendable {
        public let trashedAt: Int64
        public let account: String
        public let node: String
        public init(trashedAt: Int64, account: String, node: String) {
            self.trashedAt = trashedAt
            self.account = account
            self.node = node
        }
    }

    /// The entries of a page of `Keyspace.binOrderAll` (oldest first) put in the bin at least
    /// `retention` before `now`, at most `budget` of them; keys that do not parse are skipped.
    public static func due(_ keys: [String], now: Int64, retention: Int64, budget: Int) -> [Due] {
        var due: [Due] = []
        for key in keys where due.count < budget {
            let parts = key.dropFirst(Keyspace.binOrderAll.utf8.count).split(separator: "/")
            guard parts.count == 3, let at = Int64(parts[0]) else { continue }
            // Sorted by time: the first one not due ends the page's due ones.
            guard at <= now - retention else { break }
            due.append(Due(trashedAt: at, account: String(parts[1]), node: String(parts[2])))
        }
        return due
    }
}


/// On the leader: every `pause`, purges the rubbish bin entries older than the retention,
/// oldest first, at most `budget` per pass (each is a tree removal of its own). The files'
/// shards are deleted best effort at once; what is missed is garbage for the collector.
public final class BinPurger: Service, Sendable {
    let metadata: any MetadataStore
    let election: LeaderElection
    let clock: WorkClock
    let retention: Int64
    let pause: Duration
    let budget: Int
    let logger: Logger
    let purge: @Sendable (BinPurge.Due) async throws -> PurgeResult
    private let state: Mutex<BinPurgeStatus>
    /// Entries that failed, and when they may be tried again (a minute later): one that keeps
    /// failing does not hold the others back.
    private let failed = Mutex<[BinPurge.Due: Int64]>([:])

    public init(
        metadata: any MetadataStore, election: LeaderElection, clock: WorkClock, retentionSeconds: Int, pause: Duration = .seconds(5), budget: Int = 100,
        logger: Logger, purge: @escaping @Sendable (BinPurge.Due) async throws -> PurgeResult
    ) {
        self.metadata = metadata
        self.election = election
        self.clock = clock
        retention = Int64(retentionSeconds) * 1000
        self.pause = pause
        self.budget = budget
        self.logger = logger
        self.purge = purge
        state = Mutex(BinPurgeStatus(retentionSeconds: Int64(retentionSeconds)))
    }

    public func status() -> BinPurgeStatus { state.withLock { $0 } }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await step()
            await cancelWhenGracefulShutdown { [clock, pause] in await clock.sleep(pause) }
        }
    }

    /// One pass, on the leader only: the number of entries purged.
    @discardableResult
    public func step() async -> Int {
        guard election.current != nil else { return 0 }
        let keys: [String]
        do {
            keys = try await metadata.list(prefix: Keyspace.binOrderAll, after: nil, limit: 2 * budget).map(\.key)
        } catch {
            state.withLock { $0.failures += 1; $0.lastError = "\(error)" }
            return 0
        }
        let now = clock.wallMillis()
        let backingOff = failed.withLock { failed in
            failed = failed.filter { $0.value > now }
            return Set(failed.keys)
        }
        let due = BinPurge.due(keys, now: now, retention: retention, budget: 2 * budget).filter { !backingOff.contains($0) }.prefix(budget)
        var purged = 0
        for entry in due {
            do {
                let result = try await purge(entry)
                // A tree larger than one call's budget goes on at the next pass.
                guard result.remaining != true else {
                    state.withLock { $0.nodes += result.nodes; $0.bytes += result.bytes }
                    continue
                }
                purged += 1
                state.withLock {
                    $0.entries += 1
                    $0.nodes += result.nodes
                    $0.bytes += result.bytes
                }
                logger.info("rubbish bin entry purged", metadata: ["account.id": "\(entry.account)", "bin.nodes": "\(result.nodes)"])
            } catch {
                failed.withLock { $0[entry] = now + 60_000 }
                state.withLock { $0.failures += 1; $0.lastError = "\(entry.account)/\(entry.node): \(error)" }
                logger.warning("rubbish bin entry not purged", metadata: ["account.id": "\(entry.account)", "error": "\(error)"])
            }
        }
        state.withLock { $0.passes += 1 }
        return purged
    }
}
