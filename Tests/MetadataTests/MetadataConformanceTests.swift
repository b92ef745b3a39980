import CoffreModel
import Foundation
@testable import Metadata
import Synchronization
import Testing
import TestSupport

/// The backends under test. Each test gets a fresh key prefix, so tests can share one etcd.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case embedded, etcd, memory

    var testDescription: String { rawValue }

    func withStore<R>(_ body: (any MetadataStore, String) async throws -> R) async throws -> R {
        let prefix = "test/\(UUID().uuidString)/"
        switch self {
        case .embedded:
            return try await withTemporaryDirectory { path in
                try await body(try EmbeddedMetadataStore(path: path), prefix)
            }
        case .memory:
            return try await body(InMemoryMetadataStore(), prefix)
        case .etcd:
            let etcd = try await EtcdProcess.shared()
            return try await body(try EtcdMetadataStore(endpoints: [etcd.clientURL]), prefix)
        }
    }
}

/// One suite, every backend (the in-memory twin included): what the coordinator relies on, whatever holds its metadata.
@Suite(.serialized, .timeLimit(.minutes(5))) struct MetadataConformanceTests {
    @Test(arguments: Backend.allCases)
    func putGetDeleteAndRevisions(backend: Backend) async throws {
        try await backend.withStore { store, p in
            #expect(try await store.get(p + "a") == nil)
            let first = try await store.put(p + "a", [1, 2, 3])
            let entry = try #require(try await store.get(p + "a"))
            #expect(entry.value == [1, 2, 3])
            #expect(entry.modRevision == first)
            #expect(entry.createRevision == first)
            let second = try await store.put(p + "a", [4])
            #expect(second > first)
            let updated = try #require(try await store.get(p + "a"))
            #expect(updated.value == [4])
            #expect(updated.createRevision == first)
            #expect(updated.modRevision == second)
            try await store.put(p + "empty", [])
            #expect(try await store.get(p + "empty")?.value == [])
            try await store.delete(p + "a")
            #expect(try await store.get(p + "a") == nil)
            try await store.delete(p + "never-there")
        }
    }

    @Test(arguments: Backend.allCases)
    func compareAndSwap(backend: Backend) async throws {
        try await backend.withStore { store, p in
            let created = try #require(try await store.create(p + "m", Array("v1".utf8)))
            #expect(try await store.create(p + "m", Array("again".utf8)) == nil, "create of an existing key fails")
            let swapped = try #require(try await store.compareAndSwap(p + "m", revision: created, Array("v2".utf8)))
            #expect(try await store.compareAndSwap(p + "m", revision: created, Array("stale".utf8)) == nil)
            #expect(try await store.get(p + "m")?.value == Array("v2".utf8))
            #expect(try await store.get(p + "m")?.modRevision == swapped)
            #expect(try await store.compareAndSwap(p + "absent", revision: swapped, [1]) == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func transactionsAreAllOrNothing(backend: Backend) async throws {
        try await backend.withStore { store, p in
            let revision = try await store.put(p + "manifest", [1])
            try await store.put(p + "index/old", [1])
            // One condition fails: nothing applies.
            let failed = try await store.commit(
                if: [.revision(p + "manifest", revision), .absent(p + "index/old")],
                then: [.put(p + "manifest", [2]), .put(p + "index/new", [1]), .delete(p + "index/old")])
            #expect(failed == nil)
            #expect(try await store.get(p + "manifest")?.value == [1])
            #expect(try await store.get(p + "index/new") == nil)
            #expect(try await store.get(p + "index/old") != nil)
            // All hold: everything applies at one revision.
            let applied = try #require(try await store.commit(
                if: [.revision(p + "manifest", revision), .absent(p + "index/new")],
                then: [.put(p + "manifest", [2]), .put(p + "index/new", [1]), .delete(p + "index/old")]))
            #expect(try await store.get(p + "manifest")?.modRevision == applied)
            #expect(try await store.get(p + "index/new")?.modRevision == applied)
            #expect(try await store.get(p + "index/old") == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func listsByPrefixInOrderWithPages(backend: Backend) async throws {
        try await backend.withStore { store, p in
            for name in ["c", "a", "b/2", "b/1", "d"] { try await store.put(p + "dir/" + name, Array(name.utf8)) }
            try await store.put(p + "dirx", [0])
            let all = try await store.list(prefix: p + "dir/")
            #expect(all.map(\.key) == ["a", "b/1", "b/2", "c", "d"].map { p + "dir/" + $0 })
            let firstPage = try await store.list(prefix: p + "dir/", after: nil, limit: 2)
            #expect(firstPage.map(\.key) == [p + "dir/a", p + "dir/b/1"])
            let secondPage = try await store.list(prefix: p + "dir/", after: firstPage.last!.key, limit: 2)
            #expect(secondPage.map(\.key) == [p + "dir/b/2", p + "dir/c"])
            #expect(try await store.list(prefix: p + "dir/b/").count == 2)
            #expect(try await store.list(prefix: p + "nothing/").isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func leasesTakeTheirKeysAlong(backend: Backend) async throws {
        try await backend.withStore { store, p in
            let lease = try await store.grantLease(ttlSeconds: 30)
            try await store.put(p + "leader", [1], lease: lease)
            try await store.put(p + "plain", [1])
            #expect(try await store.get(p + "leader")?.lease == lease)
            try await store.renewLease(lease)
            try await store.revokeLease(lease)
            #expect(try await store.get(p + "leader") == nil)
            #expect(try await store.get(p + "plain") != nil)
            await #expect { try await store.renewLease(lease) } throws: { ($0 as? MetadataError)?.code == .notFound }
            await #expect { try await store.put(p + "late", [1], lease: lease) } throws: { ($0 as? MetadataError)?.code == .notFound }
            try await store.revokeLease(lease)
        }
    }

    @Test(arguments: Backend.allCases)
    func anExpiredLeaseDeletesItsKeys(backend: Backend) async throws {
        try await backend.withStore { store, p in
            let lease = try await store.grantLease(ttlSeconds: 2)
            try await store.put(p + "ephemeral", [1], lease: lease)
            let gone = try await awaitCondition(timeout: .seconds(15)) { try await store.get(p + "ephemeral") == nil }
            #expect(gone)
        }
    }

    @Test(arguments: Backend.allCases)
    func watchesSeeChangesUnderTheirPrefixOnly(backend: Backend) async throws {
        try await backend.withStore { store, p in
            let start = try await store.put(p + "w/first", [1])
            try await store.put(p + "elsewhere", [9])
            try await store.delete(p + "w/first")
            // From a past revision: the history replays.
            var replay = store.watch(prefix: p + "w/", fromRevision: start).makeAsyncIterator()
            let put = try #require(try await replay.next())
            #expect(put.kind == .put && put.key == p + "w/first" && put.value == [1] && put.revision == start)
            let deleted = try #require(try await replay.next())
            #expect(deleted.kind == .delete && deleted.key == p + "w/first")
            // From now: only new events.
            // The watch registers asynchronously (etcd acknowledges it later): writes go on, a
            // few hundred milliseconds apart, until one is seen; the first seen is a new one.
            let live = store.watch(prefix: p + "w/", fromRevision: nil)
            let seen = Mutex<MetadataEvent?>(nil)
            let reader = Task {
                for try await event in live {
                    seen.withLock { $0 = $0 ?? event }
                    return
                }
            }
            defer { reader.cancel() }
            var written: [String: Int64] = [:]
            let deadline = ContinuousClock.now + .seconds(30)
            while seen.withLock({ $0 }) == nil, ContinuousClock.now < deadline {
                let key = p + "w/new-\(written.count)"
                written[key] = try await store.put(key, [2])
                for _ in 0..<10 where seen.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(30)) }
            }
            let event = try #require(seen.withLock { $0 })
            #expect(written[event.key] == event.revision && event.kind == .put)
        }
    }

    @Test(arguments: Backend.allCases)
    func refusesBadInput(backend: Backend) async throws {
        try await backend.withStore { store, p in
            await #expect { try await store.put("", [1]) } throws: { ($0 as? MetadataError)?.code == .invalidArgument }
            await #expect { try await store.put(p + "big", [UInt8](repeating: 1, count: Limits.metadataValueSizeMax + 1)) } throws: {
                ($0 as? MetadataError)?.code == .limitExceeded
            }
            let many = (0...Limits.metadataTransactionOperationsMax).map { MetadataMutation.put(p + "k\($0)", [1]) }
            await #expect { try await store.commit(if: [], then: many) } throws: { ($0 as? MetadataError)?.code == .limitExceeded }
            await #expect { try await store.grantLease(ttlSeconds: 0) } throws: { ($0 as? MetadataError)?.code == .invalidArgument }
            let leftovers = try await store.list(prefix: p)
            #expect(leftovers.isEmpty, "nothing partial was written")
        }
    }
}

@Suite struct EmbeddedMetadataStoreTests {
    @Test func survivesARestartAndDropsLeasedKeys() async throws {
        try await withTemporaryDirectory { path in
            let revision: Int64
            do {
                let store = try EmbeddedMetadataStore(path: path)
                let lease = try await store.grantLease(ttlSeconds: 60)
                try await store.put("leader", [1], lease: lease)
                revision = try await store.put("manifest", [7])
            }
            let store = try EmbeddedMetadataStore(path: path)
            #expect(try await store.get("manifest")?.value == [7])
            #expect(try await store.get("leader") == nil, "no lease survives a restart")
            let next = try await store.put("after", [1])
            #expect(next > revision, "revisions keep growing across restarts")
        }
    }
}

@Suite struct EtcdMetadataStoreTests {
    @Test func failsOverToTheNextEndpointAndReportsUnavailable() async throws {
        let etcd = try await EtcdProcess.shared()
        // Port 1 on loopback refuses connections: the store must move on to the live member.
        let store = try EtcdMetadataStore(endpoints: ["http://127.0.0.1:1", etcd.clientURL])
        let key = "test/\(UUID().uuidString)/failover"
        try await store.put(key, [1])
        #expect(try await store.get(key)?.value == [1])
        let dead = try EtcdMetadataStore(endpoints: ["http://127.0.0.1:1"], timeout: .seconds(2))
        await #expect { try await dead.get(key) } throws: { ($0 as? MetadataError)?.code == .unavailable }
        #expect(throws: MetadataError.self) { try EtcdMetadataStore(endpoints: ["127.0.0.1:2379"]) }
    }

    /// At its backend quota etcd raises NOSPACE: writes fail with `metadata_full`, reads go on,
    /// and the alarm is visible.
    @Test func aFullEtcdRefusesWritesWithAClearCodeAndKeepsReading() async throws {
        let etcd = try await EtcdProcess.start(extra: ["--quota-backend-bytes", String(1 << 20)])
        defer { etcd.stop() }
        let store = try EtcdMetadataStore(endpoints: [etcd.clientURL])
        try await store.put("kept", [7])
        #expect(try await store.alarms().isEmpty)
        var refused: MetadataError?
        for i in 0..<400 where refused == nil {
            do { try await store.put("filler/\(i)", [UInt8](repeating: UInt8(i % 251), count: 60_000)) } catch { refused = error }
        }
        #expect(refused?.code == .metadataFull, "\(String(describing: refused))")
        #expect(try await store.get("kept")?.value == [7])
        #expect(try await store.alarms().contains { $0.hasPrefix("NOSPACE") })
    }

    @Test func prefixEndFollowsEtcd() {
        #expect(EtcdMetadataStore.prefixEnd(Array("ab".utf8)) == Array("ac".utf8))
        #expect(EtcdMetadataStore.prefixEnd([0x61, 0xFF]) == [0x62])
        #expect(EtcdMetadataStore.prefixEnd([]) == [0])
    }
}
