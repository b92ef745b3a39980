public import CoffreModel
import Foundation
import Synchronization

/// The metadata store's semantics in memory, on an injected clock: the twin that unit tests
/// and the seeded simulation run the coordinator's logic against (leases expire when the
/// simulated clock says so). It passes the same conformance suite as the two real backends
/// (`Tests/MetadataTests`); nothing survives the process, so no coordinator runs on it.
public final class InMemoryMetadataStore: MetadataStore {
    private struct Lease {
        var ttl: Duration
        var expiry: Duration
        var keys: Set<String>
    }

    private struct State {
        var revision: Int64 = 0
        var entries: [String: MetadataEntry] = [:]
        /// The keys in order, for `list`.
        var keys: [String] = []
        var leases: [Int64: Lease] = [:]
        var nextLease: Int64 = 1
        var watches = WatchHub()
    }

    private let state = Mutex(State())
    private let clock: WorkClock

    public init(clock: WorkClock = .system) {
        self.clock = clock
    }

    /// The store's revision now (raised by every commit that changes something).
    public var revision: Int64 { state.withLock { $0.revision } }

    public func get(_ key: String) async throws(MetadataError) -> MetadataEntry? {
        try MetadataValidation.check(key: key)
        return state.withLock { state in
            expireLeases(&state)
            return state.entries[key]
        }
    }

    public func list(prefix: String, after: String?, limit: Int) async throws(MetadataError) -> [MetadataEntry] {
        let limit = min(max(limit, 0), Limits.metadataListPageMax)
        return state.withLock { state in
            expireLeases(&state)
            var index = Self.firstIndex(notBelow: after ?? prefix, in: state.keys)
            var found: [MetadataEntry] = []
            while index < state.keys.count, found.count < limit {
                let key = state.keys[index]
                guard key.hasPrefix(prefix) else { break }
                if key != after { found.append(state.entries[key]!) }
                index += 1
            }
            return found
        }
    }

    public func commit(if conditions: [MetadataCondition], then mutations: [MetadataMutation]) async throws(MetadataError) -> Int64? {
        try MetadataValidation.check(conditions, mutations)
        return try state.withLock { state throws(MetadataError) -> Int64? in
            expireLeases(&state)
            for condition in conditions {
                switch condition {
                case .absent(let key):
                    if state.entries[key] != nil { return nil }
                case .revision(let key, let revision):
                    guard state.entries[key]?.modRevision == revision else { return nil }
                }
            }
            for case .put(_, _, let lease?) in mutations where state.leases[lease.value] == nil {
                throw MetadataError(.notFound, "lease \(lease) has expired or does not exist")
            }
            guard !mutations.isEmpty else { return state.revision }
            return apply(mutations, &state)
        }
    }

    public func grantLease(ttlSeconds: Int) async throws(MetadataError) -> LeaseID {
        guard ttlSeconds >= 1, ttlSeconds <= 86_400 else {
            throw MetadataError(.invalidArgument, "lease TTL must be 1...86400 seconds, got \(ttlSeconds)")
        }
        let now = clock.monotonic()
        return state.withLock { state in
            let id = state.nextLease
            state.nextLease += 1
            let ttl = Duration.seconds(ttlSeconds)
            state.leases[id] = Lease(ttl: ttl, expiry: now + ttl, keys: [])
            return LeaseID(id)
        }
    }

    public func renewLease(_ lease: LeaseID) async throws(MetadataError) {
        let now = clock.monotonic()
        try state.withLock { state throws(MetadataError) in
            expireLeases(&state)
            guard var current = state.leases[lease.value] else {
                throw MetadataError(.notFound, "lease \(lease) has expired or does not exist")
            }
            current.expiry = now + current.ttl
            state.leases[lease.value] = current
        }
    }

    public func revokeLease(_ lease: LeaseID) async throws(MetadataError) {
        state.withLock { state in
            guard let current = state.leases.removeValue(forKey: lease.value) else { return }
            if !current.keys.isEmpty { _ = apply(current.keys.sorted().map { .delete($0) }, &state) }
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

    /// The position of the first key not below `key` (binary search).
    private static func firstIndex(notBelow key: String, in keys: [String]) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle].utf8.lexicographicallyPrecedes(key.utf8) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func apply(_ mutations: [MetadataMutation], _ state: inout State) -> Int64 {
        let revision = state.revision + 1
        var events: [MetadataEvent] = []
        for mutation in mutations {
            switch mutation {
            case .put(let key, let value, let lease):
                let previous = state.entries[key]
                if previous == nil {
                    state.keys.insert(key, at: Self.firstIndex(notBelow: key, in: state.keys))
                }
                if let old = previous?.lease { state.leases[old.value]?.keys.remove(key) }
                if let lease { state.leases[lease.value]?.keys.insert(key) }
                state.entries[key] = MetadataEntry(
                    key: key, value: value, modRevision: revision, createRevision: previous?.createRevision ?? revision, lease: lease)
                events.append(MetadataEvent(kind: .put, key: key, value: value, revision: revision))
            case .delete(let key):
                guard let previous = state.entries.removeValue(forKey: key) else { continue }
                state.keys.remove(at: Self.firstIndex(notBelow: key, in: state.keys))
                if let old = previous.lease { state.leases[old.value]?.keys.remove(key) }
                events.append(MetadataEvent(kind: .delete, key: key, value: [], revision: revision))
            }
        }
        guard !events.isEmpty else { return state.revision }
        state.revision = revision
        state.watches.publish(events)
        return revision
    }

    private func expireLeases(_ state: inout State) {
        let now = clock.monotonic()
        let expired = state.leases.filter { $0.value.expiry <= now }
        guard !expired.isEmpty else { return }
        var keys: [String] = []
        for id in expired.keys.sorted() {
            keys += expired[id]!.keys.sorted()
            state.leases[id] = nil
        }
        if !keys.isEmpty { _ = apply(keys.map { .delete($0) }, &state) }
    }
}
