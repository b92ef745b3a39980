import Checksum
import CoffreModel
import Coordinator
import Foundation
import Logging
import Metadata
import NIOCore
import NodeClient
import Placement
import Synchronization
import Testing
import TestSupport

@Suite(.serialized, .timeLimit(.minutes(3))) struct CollectorTests {
    /// Runs collector steps until it has walked every node once more.
    func onePass(_ collector: GarbageCollector, now: Int64) async {
        let start = collector.status().passesCompleted
        for _ in 0..<1000 where collector.status().passesCompleted == start { await collector.step(now: now) }
    }

    func storedKeys(_ cluster: MemoryCluster) -> Set<String> {
        Set(cluster.nodes.flatMap { node in cluster.transport.keys(node.value).map { node.value + ":" + String(decoding: $0, as: UTF8.self) } })
    }

    func referencedKeys(_ cluster: MemoryCluster, _ ids: [String]) async throws -> Set<String> {
        var keys = Set<String>()
        for id in ids {
            for segment in try await cluster.store.manifest(id).segments {
                for shard in segment.shards { keys.insert("\(shard.node):\(id)/\(segment.index)/\(shard.index)") }
            }
        }
        return keys
    }

    @Test func unreferencedShardsGoAfterTheGraceAndReferencedOnesNever() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder)
            let election = LeaderElection(coordinator: "c", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await election.step()
            let collector = GarbageCollector(objects: cluster.store, election: election, settings: .init(grace: .seconds(60), pageSize: 7), logger: Logger(label: "test"))
            var random = SeededGenerator(seed: 31)
            let kept = random.bytes(2 * (1 << 20) + 5)
            _ = try await cluster.upload(kept, id: "kept")
            // An upload that never commits (its coordinator died), and a file deleted while
            // its shards' nodes were away.
            let orphan = cluster.store.makeWriter(objectId: "orphan", owner: "test")
            try await orphan.append(ByteBuffer(bytes: random.bytes(1 << 20)))
            _ = try await orphan.finish()
            _ = try await cluster.upload(random.bytes(300_000), id: "deleted")
            try await cluster.metadata.delete(Keyspace.manifest("deleted"))
            let before = storedKeys(cluster)
            let now = Int64(Date().timeIntervalSince1970 * 1000)

            // Young garbage stays.
            await onePass(collector, now: now)
            #expect(storedKeys(cluster) == before)
            #expect(collector.status().shardsDeleted == 0 && collector.status().shardsScanned == Int64(before.count))

            // Past the grace, only what a manifest references is left.
            await onePass(collector, now: now + 61_000)
            let referenced = try await referencedKeys(cluster, ["kept"])
            #expect(storedKeys(cluster) == referenced)
            #expect(collector.status().shardsDeleted == Int64(before.count - referenced.count))
            #expect(try await cluster.download("kept") == kept)
        }
    }

    @Test func aReturningNodesReplacedShardsAreCollectedAndARewrittenShardIsNot() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder)
            let election = LeaderElection(coordinator: "c", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await election.step()
            let collector = GarbageCollector(objects: cluster.store, election: election, settings: .init(grace: .seconds(60)), logger: Logger(label: "test"))
            let bytes = SeededGenerator(seed: 32).bytesOnce(1 << 20)
            let manifest = try await cluster.upload(bytes, id: "moved")
            let away = manifest.segments[0].shards[4].node
            cluster.transport.setDown(away.value, true)
            await cluster.topology.refresh()
            let outcome = try await cluster.store.repairSegment(objectId: "moved", segment: 0, lostNodes: [away], suspects: [], fence: election.current!.fence)
            guard case .repaired = outcome else { Issue.record("\(outcome)"); return }
            // The node comes back with its old copy of shard 4.
            cluster.transport.setDown(away.value, false)
            await cluster.topology.refresh()
            let staleKey = ObjectManifest.shardKey(object: "moved", segment: 0, shard: 4)
            #expect(cluster.transport.shard(away.value, key: staleKey) != nil)
            await onePass(collector, now: Int64(Date().timeIntervalSince1970 * 1000) + 61_000)
            #expect(cluster.transport.shard(away.value, key: staleKey) == nil)
            #expect(storedKeys(cluster) == (try await referencedKeys(cluster, ["moved"])))
            #expect(try await cluster.download("moved") == bytes)

            // Compare-and-delete: a shard written again after it was listed stays.
            let key = ObjectManifest.shardKey(object: "moved", segment: 0, shard: 0)
            let node = try await cluster.store.manifest("moved").segments[0].shards[0].node
            let listed = try #require(cluster.transport.shard(node.value, key: key))
            cluster.transport.setCreatedAt(node.value, key: key, listed.createdAt + 5)
            await #expect(throws: NodeClientError.self) {
                try await cluster.transport.delete(base: cluster.transport.base(of: node.value), key: key, ifCreatedAt: listed.createdAt)
            }
            #expect(cluster.transport.shard(node.value, key: key) != nil)
        }
    }

    @Test func aLongUploadKeepsAnIntentThatTheCollectorRespects() async throws {
        try await withTemporaryDirectory { folder in
            let memory = try await MemoryCluster(folder: folder)
            // The writer's clock is moved by hand: minutes pass in an instant, so a loaded
            // machine's pauses (seconds) cannot change what this test sees.
            let skew = Mutex<Duration>(.zero)
            let store = ObjectStore(
                topology: memory.topology, metadata: memory.metadata, policy: memory.store.policy, segmentSize: 1 << 20,
                collectorGrace: .seconds(600), clock: .skewed { skew.withLock { $0 } })
            let advance = { (by: Duration) in skew.withLock { $0 += by } }
            let key = Keyspace.upload("slow")
            let writer = store.makeWriter(objectId: "slow", owner: "test")
            var random = SeededGenerator(seed: 33)
            try await writer.append(ByteBuffer(bytes: random.bytes(1 << 20)))
            #expect(try await memory.metadata.get(key) == nil, "a first segment costs no intent")
            try await writer.append(ByteBuffer(bytes: random.bytes(1 << 20)))
            let first = try #require(try await memory.metadata.get(key)?.modRevision, "a second segment writes an intent")
            advance(.seconds(100))
            try await writer.append(ByteBuffer(bytes: random.bytes(1 << 20)))
            #expect(try await memory.metadata.get(key)?.modRevision == first, "refreshed only after a quarter of the grace")
            advance(.seconds(100))
            try await writer.append(ByteBuffer(bytes: random.bytes(1 << 20)))
            let refreshed = try #require(try await memory.metadata.get(key)?.modRevision)
            #expect(refreshed > first)
            _ = try await writer.finish()
            let guarded = try writer.commitGuard()
            #expect(guarded.conditions == [.revision(key, refreshed)] && guarded.mutations == [.delete(key)])

            // The collector leaves the shards of an upload with a fresh intent, however old
            // they look, and takes them once the intent is gone.
            let election = LeaderElection(coordinator: "c", metadata: memory.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await election.step()
            let collector = GarbageCollector(objects: store, election: election, settings: .init(grace: .seconds(600)), logger: Logger(label: "test"))
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for node in memory.nodes {
                for shard in memory.transport.keys(node.value) { memory.transport.setCreatedAt(node.value, key: shard, now - 700_000) }
            }
            let held = storedKeys(memory)
            #expect(held.count == 4 * 9)
            await onePass(collector, now: now)
            #expect(storedKeys(memory) == held)
            #expect(try await memory.metadata.commit(if: [], then: [.delete(key)]) != nil)
            await onePass(collector, now: now)
            #expect(storedKeys(memory).isEmpty)

            // Without an intent, a commit after half the grace is refused...
            let late = store.makeWriter(objectId: "late", owner: "test")
            try await late.append(ByteBuffer(bytes: random.bytes(1000)))
            _ = try await late.finish()
            #expect(try late.commitGuard().conditions.isEmpty)
            advance(.seconds(301))
            #expect(throws: CoordinatorError.self) { _ = try late.commitGuard() }
            // ...and so is a second segment that comes too late to write a first intent.
            let stalled = store.makeWriter(objectId: "stalled", owner: "test")
            try await stalled.append(ByteBuffer(bytes: random.bytes(1 << 20)))
            advance(.seconds(301))
            await #expect(throws: CoordinatorError.self) { try await stalled.append(ByteBuffer(bytes: random.bytes(1 << 20))) }
            #expect(try await memory.metadata.get(Keyspace.upload("stalled")) == nil)
        }
    }
}

@Suite(.serialized, .timeLimit(.minutes(2))) struct ScrubScheduleTests {
    @Test func theScheduleWalksEveryNodeAndQueuesWhatIsCorrupt() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder)
            let election = LeaderElection(coordinator: "c", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await election.step()
            let manifest = try await cluster.upload(SeededGenerator(seed: 41).bytesOnce(1 << 20), id: "scrubbed")
            let location = manifest.segments[0].shards[8]
            #expect(cluster.transport.corrupt(location.node.value, key: ObjectManifest.shardKey(object: "scrubbed", segment: 0, shard: 8)))
            // Garbage that is corrupt too is not repair's business.
            let stray = try #require(cluster.nodes.first { node in !manifest.segments[0].shards.contains { $0.node == node } })
            let strayKey = ObjectManifest.shardKey(object: "gone", segment: 0, shard: 0)
            let body: [UInt8] = Array(repeating: 7, count: 100)
            try await cluster.transport.put(
                base: cluster.transport.base(of: stray.value), key: strayKey, body: ByteBuffer(bytes: body),
                checksum: body.withUnsafeBytes { CRC32C.checksum($0) })
            #expect(cluster.transport.corrupt(stray.value, key: strayKey))
            let schedule = ScrubScheduler(objects: cluster.store, election: election, settings: .init(budgetBytesPerSecond: 1 << 40, pageSize: 3), logger: Logger(label: "test"))
            for _ in 0..<200 where schedule.status().passesCompleted == 0 { _ = await schedule.step() }
            let status = schedule.status()
            #expect(status.passesCompleted == 1 && status.corruptFound == 2 && status.suspectsRecorded == 1, "\(status)")
            #expect(try await cluster.metadata.list(prefix: Keyspace.suspects).map(\.key) == [Keyspace.suspect(location.node, "scrubbed", segment: 0, shard: 8)])
            #expect(status.shardsScanned == Int64(cluster.nodes.reduce(0) { $0 + cluster.transport.keys($1.value).count }))
        }
    }
}
