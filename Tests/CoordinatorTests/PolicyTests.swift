import CoffreAPI
import CoffreModel
import Coordinator
import Foundation
import Logging
import Metadata
import NIOCore
import Placement
import Testing
import TestSupport

/// Online erasure-scheme changes over in-memory nodes and real embedded metadata: segments
/// re-encoded one swap at a time stay readable and repairable in whichever scheme they have;
/// the leader's job re-encodes everything; the old shards go to the collector.
@Suite(.serialized, .timeLimit(.minutes(3))) struct PolicyTests {
    static let target = try! PlacementPolicy(erasure: ErasurePolicy(dataShards: 8, parityShards: 4))

    @Test func aMixedObjectReadsAndIsRepairedSegmentBySegmentInItsOwnScheme() async throws {
        try await withTemporaryDirectory { folder in
            // Five countries: RS(8,4) needs a 13th node to rebuild a lost one's shard elsewhere.
            let cluster = try await MemoryCluster(folder: folder, segmentSize: 64 << 10, countries: ["FR", "DE", "CH", "NZ", "JP"])
            var random = SeededGenerator(seed: 91)
            let bytes = random.bytes(3 * (64 << 10) + 1000)
            _ = try await cluster.upload(bytes, id: "mixed")
            let before = try await cluster.store.manifest("mixed")
            let outcome = try await cluster.store.reencode(objectId: "mixed", to: Self.target, segmentsMax: 1, fence: nil)
            let manifest = try await cluster.store.manifest("mixed")
            let read = Int64(6 * before.segments[0].shardLength)
            let written = Int64(12 * manifest.segments[0].shardLength)
            #expect(outcome == .reencoded(segments: 1, bytesRead: read, bytesWritten: written, finished: false), "\(outcome)")
            #expect(manifest.policy.dataShards == 6, "a mixed object keeps its old scheme as the manifest's")
            #expect(manifest.erasure(of: manifest.segments[0]) == Self.target.erasure && manifest.segments[0].generation == 1)
            #expect(manifest.erasure(of: manifest.segments[1]).dataShards == 6 && manifest.segments[1].generation == nil)
            #expect(try await cluster.download("mixed") == bytes)
            try await cluster.checkFullRedundancy("mixed", excluding: [])

            // A node holding shards of both schemes is lost: each segment is rebuilt in its own.
            let victim = manifest.segments[0].shards[0].node
            cluster.transport.setDown(victim.value, true)
            cluster.transport.wipe(victim.value)
            cluster.topology.reportFailure(victim)
            let segments = manifest.segments.filter { $0.shards.contains { $0.node == victim } }.map(\.index)
            let repaired = try await cluster.store.repairSegments(objectId: "mixed", segments: segments, lostNodes: [victim], suspects: [], fence: nil)
            guard case .repaired = repaired else {
                Issue.record("\(repaired)")
                return
            }
            try await cluster.checkFullRedundancy("mixed", excluding: [victim])
            #expect(try await cluster.download("mixed") == bytes)
            let after = try await cluster.store.manifest("mixed")
            #expect(after.segments.map { after.erasure(of: $0).dataShards } == [8, 6, 6, 6], "repair keeps each segment's scheme")
        }
    }

    @Test func theLeadersJobReencodesEverythingAndTheOldShardsAreCollected() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder, segmentSize: 64 << 10)
            var random = SeededGenerator(seed: 92)
            var stored: [String: [UInt8]] = [:]
            for (index, size) in [1, 5000, 64 << 10, 200_000, 300_001].enumerated() {
                stored["p\(index)"] = random.bytes(size)
                _ = try await cluster.upload(stored["p\(index)"]!, id: "p\(index)")
            }
            let election = LeaderElection(coordinator: "c", metadata: cluster.metadata, ttlSeconds: 600, logger: Logger(label: "test"))
            await election.step()
            let worker = PolicyWorker(
                objects: cluster.store, election: election, settings: .init(budgetBytesPerSecond: 1 << 40, objectsPerStep: 2, segmentsPerSwap: 2),
                logger: Logger(label: "test"))
            #expect(await worker.step() == false, "no job: nothing to do")

            // The scheme changes: new uploads get it at once.
            cluster.store.setPolicy(Self.target)
            stored["new"] = random.bytes(100_000)
            let fresh = try await cluster.upload(stored["new"]!, id: "new")
            #expect(fresh.policy == Self.target.erasure && fresh.segments.allSatisfy { $0.shards.count == 12 && $0.policy == nil })

            let job = PolicyStatus.Job(k: 8, m: 4, startedAt: Int64(Date().timeIntervalSince1970 * 1000))
            try await cluster.metadata.put(Keyspace.policyJob, Array(try JSONEncoder().encode(job)))
            var steps = 0
            while try await cluster.metadata.get(Keyspace.policyJob) != nil, steps < 50 {
                await worker.step()
                steps += 1
            }
            #expect(try await cluster.metadata.get(Keyspace.policyJob) == nil, "the job ends")
            let status = worker.status()
            #expect(status.objectsReencoded == 5 && status.failed == 0 && status.lastJobFinishedAt != nil, "\(status)")
            for (id, bytes) in stored {
                let manifest = try await cluster.store.manifest(id)
                #expect(manifest.policy == Self.target.erasure && manifest.isEncoded(with: Self.target.erasure))
                #expect(manifest.segments.allSatisfy { $0.policy == nil }, "a whole object records its scheme once")
                try await cluster.checkFullRedundancy(id, excluding: [])
                for segment in manifest.segments {
                    let perCountry = Dictionary(grouping: segment.shards, by: { $0.node.value.prefix(2) }).values.map(\.count)
                    #expect(perCountry.allSatisfy { $0 <= Self.target.shardsPerCountryMax }, "\(id)/\(segment.index): \(perCountry)")
                }
                #expect(try await cluster.download(id) == bytes)
            }

            // The first encodings' shards are garbage: the collector takes them, and only them.
            let collector = GarbageCollector(objects: cluster.store, election: election, settings: .init(grace: .seconds(60)), logger: Logger(label: "test"))
            let later = Int64(Date().timeIntervalSince1970 * 1000) + 120_000
            let start = collector.status().passesCompleted
            for _ in 0..<2000 where collector.status().passesCompleted < start + 1 { await collector.step(now: later) }
            var referenced = Set<String>()
            for id in stored.keys {
                for segment in try await cluster.store.manifest(id).segments {
                    for shard in segment.shards {
                        referenced.insert(shard.node.value + ":" + String(decoding: segment.shardKey(object: id, shard: shard.index), as: UTF8.self))
                    }
                }
            }
            let left = Set(cluster.nodes.flatMap { node in cluster.transport.keys(node.value).map { node.value + ":" + String(decoding: $0, as: UTF8.self) } })
            #expect(left == referenced)
            for (id, bytes) in stored { #expect(try await cluster.download(id) == bytes) }
        }
    }
}
