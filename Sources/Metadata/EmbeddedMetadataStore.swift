import CoffreModel
import Foundation
import RocksDB
import Synchronization

/// The metadata store on one coordinator's disk: RocksDB, with etcd's semantics.
///
/// Every change runs under one lock and is written with a synced write-ahead log, so a
/// committed transaction survives power loss. Leases live in memory: after a restart every
/// lease has expired, and the keys that carried one are deleted on open (as etcd does for
/// leases whose holder is gone). Watches can start up to `Limits.metadataHistoryMax` events
/// in the past; older revisions end the watch with `compacted`.
public final class EmbeddedMetadataStore: MetadataStore {
    private struct Lease {
        var ttl: Duration
        var expiry: ContinuousClock.Instant
        var keys: Set<String>
    }

    private struct State {
        var revision: Int64
        var leases: [Int64: Lease] = [:]
        var nextLease: Int64 = 1
        var watches = WatchHub()
    }

    static let family = "kv"
    static let revisionKey = Array("coffre/revision".utf8)

    private let database: RocksDatabase
    private let state: Mutex<State>

    /// Opens (or creates) the store in the folder `path`.
    public init(path: String) throws(MetadataError) {
        do {
            database = try RocksDatabase(path: path, columnFamilies: [.init(name: Self.family)])
            let revision = try database.get(Self.revisionKey).map { Self.decodeInt($0.bytes, at: 0) } ?? 0
            state = Mutex(State(revision: revision))
        } catch {
            throw MetadataError(.storageFailure, "cannot open metadata store at \(path): \(error.message)")
        }
        try state.withLock { state throws(MetadataError) in try dropLeasedKeys(&state) }
    }

    public func get(_ key: String) async throws(MetadataError) -> MetadataEntry? {
        try MetadataValidation.check(key: key)
        return try state.withLock { state throws(MetadataError) in
            try expireLeases(&state)
            return try read(key)
        }
    }

    public func list(prefix: String, after: String?, limit: Int) async throws(MetadataError) -> [MetadataEntry] {
        let limit = min(max(limit, 0), Limits.metadataListPageMax)
        return try state.withLock { state throws(MetadataError) in
            try expireLeases(&state)
            let iterator = database.makeIterator(family: Self.family)
            iterator.seek(Array((after ?? prefix).utf8))
            var entries: [MetadataEntry] = []
            while iterator.isValid, entries.count < limit {
                let key = String(decoding: iterator.key, as: UTF8.self)
                guard key.hasPrefix(prefix) else { break }
                if key != after, let entry = Self.decodeEntry(key: key, iterator.value) { entries.append(entry) }
                iterator.next()
            }
            do { try iterator.checkError() } catch { throw MetadataError(.storageFailure, "list \(prefix): \(error)") }
            return entries
        }
    }

    public func commit(if conditions: [MetadataCondition], then mutations: [MetadataMutation]) async throws(MetadataError) -> Int64? {
        try MetadataValidation.check(conditions, mutations)
        return try state.withLock { state throws(MetadataError) -> Int64? in
            try expireLeases(&state)
            for condition in conditions {
                switch condition {
                case .absent(let key):
                    if try read(key) != nil { return nil }
                case .revision(let key, let revision):
                    guard let entry = try read(key), entry.modRevision == revision else { return nil }
                }
            }
            for case .put(_, _, let lease?) in mutations where state.leases[lease.value] == nil {
                throw MetadataError(.notFound, "lease \(lease) has expired or does not exist")
            }
            guard !mutations.isEmpty else { return state.revision }
            return try apply(mutations, &state)
        }
    }

    public func grantLease(ttlSeconds: Int) async throws(MetadataError) -> LeaseID {
        guard ttlSeconds >= 1, ttlSeconds <= 86_400 else {
            throw MetadataError(.invalidArgument, "lease TTL must be 1...86400 seconds, got \(ttlSeconds)")
        }
        return state.withLock { state in
            let id = state.nextLease
            state.nextLease += 1
            let ttl = Duration.seconds(ttlSeconds)
            state.leases[id] = Lease(ttl: ttl, expiry: .now + ttl, keys: [])
            return LeaseID(id)
        }
    }

    public func renewLease(_ lease: LeaseID) async throws(MetadataError) {
        try state.withLock { state throws(MetadataError) in
            try expireLeases(&state)
            guard var current = state.leases[lease.value] else {
                throw MetadataError(.notFound, "lease \(lease) has expired or does not exist")
            }
            current.expiry = .now + current.ttl
            state.leases[lease.value] = current
        }
    }

    public func revokeLease(_ lease: LeaseID) async throws(MetadataError) {
        try state.withLock { state throws(MetadataError) in
            guard let current = state.leases.removeValue(forKey: lease.value) else { return }
            if !current.keys.isEmpty { _ = try apply(current.keys.sorted().map { .delete($0) }, &state) }
        }
    }

    public func watch(prefix: String, fromRevision revision: Int64?) -> AsyncThrowingStream<MetadataEvent, any Error> {
        WatchHub.stream { id, continuation in
            state.withLock { state in state.watches.add(id, prefix: prefix, from: revision, current: state.revision, continuation) }
        } onEnd: { [weak self] id in
            self?.state.withLock { $0.watches.remove(id) }
        }
    }

    // MARK: - Private (all under the lock)

    private func read(_ key: String) throws(MetadataError) -> MetadataEntry? {
        do {
            return try database.get(Array(key.utf8), family: Self.family).flatMap { Self.decodeEntry(key: key, $0.bytes) }
        } catch {
            throw MetadataError(.storageFailure, "get \(key): \(error.message)")
        }
    }

    /// Writes `mutations` at the next revision, records and publishes the events.
    private func apply(_ mutations: [MetadataMutation], _ state: inout State) throws(MetadataError) -> Int64 {
        let revision = state.revision + 1
        let batch = RocksBatch()
        var events: [MetadataEvent] = []
        var leaseChanges: [(key: String, old: LeaseID?, new: LeaseID?)] = []
        for mutation in mutations {
            switch mutation {
            case .put(let key, let value, let lease):
                let previous = try read(key)
                let entry = MetadataEntry(
                    key: key, value: value, modRevision: revision,
                    createRevision: previous?.createRevision ?? revision, lease: lease)
                batch.put(Array(key.utf8), Self.encode(entry), family: Self.family, database: database)
                events.append(MetadataEvent(kind: .put, key: key, value: value, revision: revision))
                leaseChanges.append((key, previous?.lease, lease))
            case .delete(let key):
                guard let previous = try read(key) else { continue }
                batch.delete(Array(key.utf8), family: Self.family, database: database)
                events.append(MetadataEvent(kind: .delete, key: key, value: [], revision: revision))
                leaseChanges.append((key, previous.lease, nil))
            }
        }
        guard !events.isEmpty else { return state.revision }
        batch.put(Self.revisionKey, Self.encodeInt(revision), family: "default", database: database)
        do {
            try database.write(batch, sync: true)
        } catch {
            throw MetadataError(.storageFailure, "commit at revision \(revision): \(error.message)")
        }
        state.revision = revision
        for change in leaseChanges {
            if let old = change.old { state.leases[old.value]?.keys.remove(change.key) }
            if let new = change.new { state.leases[new.value]?.keys.insert(change.key) }
        }
        state.watches.publish(events)
        return revision
    }

    private func expireLeases(_ state: inout State) throws(MetadataError) {
        let now = ContinuousClock.now
        let expired = state.leases.filter { $0.value.expiry <= now }
        guard !expired.isEmpty else { return }
        var keys: [String] = []
        for (id, lease) in expired {
            state.leases[id] = nil
            keys += lease.keys
        }
        if !keys.isEmpty { _ = try apply(keys.sorted().map { .delete($0) }, &state) }
    }

    /// After a restart no lease survives: delete every key that carried one.
    private func dropLeasedKeys(_ state: inout State) throws(MetadataError) {
        let iterator = database.makeIterator(family: Self.family)
        iterator.seekToFirst()
        var keys: [String] = []
        while iterator.isValid {
            let key = String(decoding: iterator.key, as: UTF8.self)
            if let entry = Self.decodeEntry(key: key, iterator.value), entry.lease != nil { keys.append(key) }
            iterator.next()
        }
        if !keys.isEmpty { _ = try apply(keys.map { .delete($0) }, &state) }
    }

    // MARK: - Encoding: modRevision i64, createRevision i64, lease i64 (0 = none), value.

    static func encode(_ entry: MetadataEntry) -> [UInt8] {
        encodeInt(entry.modRevision) + encodeInt(entry.createRevision) + encodeInt(entry.lease?.value ?? 0) + entry.value
    }

    static func decodeEntry(key: String, _ bytes: [UInt8]) -> MetadataEntry? {
        guard bytes.count >= 24 else { return nil }
        let lease = decodeInt(bytes, at: 16)
        return MetadataEntry(
            key: key, value: Array(bytes[24...]), modRevision: decodeInt(bytes, at: 0),
            createRevision: decodeInt(bytes, at: 8), lease: lease == 0 ? nil : LeaseID(lease))
    }

    static func encodeInt(_ value: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * Int64($0))) }
    }

    static func decodeInt(_ bytes: [UInt8], at offset: Int) -> Int64 {
        bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | Int64($1) }
    }
}
