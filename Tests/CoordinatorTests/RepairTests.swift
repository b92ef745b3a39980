import CoffreModel
import Coordinator
import Foundation
import Logging
import Metadata
import NIOCore
import NodeClient
import Placement
import Testing
import TestSupport

/// The object path over in-memory nodes (`InMemoryShardTransport`, faults injected) and
/// real embedded metadata (RocksDB): 12 nodes in 4 countries, RS(6,3).
struct MemoryCluster {
    let transport: InMemoryShardTransport
    let topology: ClusterTopology
    let store: ObjectStore
    let metadata: EmbeddedMetadataStore
    let nodes: [NodeID]

    init(
        folder: String, segmentSize: Int = 1 << 20, countries: [String] = ["FR", "DE", "CH", "NZ"], perCountry: Int = 3,
        capacityBytes: Int64 = 1 << 40
    ) async throws {
        transport = InMemoryShardTransport()
        var members: [ClusterTopology.Member] = []
        for code in countries {
            for n in 1...perCountry {
                let id = "\(code.lowercased())-\(n)"
                let base = transport.addNode(id: id, country: code, region: "\(code.lowercased())-r\(n % 2)", capacityBytes: capacityBytes)
                members.append(ClusterTopology.Member(id: try NodeID(id), country: try Country(code), region: "\(code.lowercased())-r\(n % 2)", url: base))
            }
        }
        nodes = members.map(\.id)
        // Nodes go down in these tests because they are set down and a read or write finds it
        // (or a planner is told), never because time passed: on a loaded machine a minute can
        // pass between two steps of a test.
        topology = ClusterTopology(members: members, client: transport, downAfter: .seconds(3600))
        await topology.refresh()
        metadata = try EmbeddedMetadataStore(path: folder + "/metadata")
        let policy = try PlacementPolicy(erasure: ErasurePolicy(dataShards: 6, parityShards: 3))
        store = ObjectStore(topology: topology, metadata: metadata, policy: policy, segmentSize: segmentSize, hedgeAfter: .milliseconds(200))
    }

    /// Writes and commits an object (manifest and placement index, as an upload does).
    func upload(_ bytes: [UInt8], id: String) async throws -> ObjectManifest {
        let writer = store.makeWriter(objectId: id, owner: "test")
        try await writer.append(ByteBuffer(bytes: bytes))
        let manifest = try await writer.finish()
        var mutations: [MetadataMutation] = [.put(Keyspace.manifest(id), Array(try JSONEncoder().encode(manifest)))]
        for node in Set(manifest.segments.flatMap { $0.shards.map(\.node) }) { mutations.append(.put(Keyspace.placement(node, id), [])) }
        #expect(try await metadata.commit(if: [.absent(Keyspace.manifest(id))], then: mutations) != nil)
        return manifest
    }

    func download(_ id: String) async throws -> [UInt8] {
        let manifest = try await store.manifest(id)
        var out: [UInt8] = []
        try await store.read(manifest) { out += Array(buffer: $0) }
        return out
    }

    /// Every shard of every segment is on an up node, distinct per segment, and that node
    /// holds a body matching the manifest's checksum.
    func checkFullRedundancy(_ id: String, excluding gone: Set<NodeID>) async throws {
        let manifest = try await store.manifest(id)
        for segment in manifest.segments {
            #expect(Set(segment.shards.map(\.node)).count == manifest.erasure(of: segment).totalShards)
            for shard in segment.shards {
                #expect(!gone.contains(shard.node), "\(id)/\(segment.index)/\(shard.index) still on \(shard.node)")
                let stored = transport.shard(shard.node.value, key: segment.shardKey(object: id, shard: shard.index))
                #expect(stored?.checksum == shard.checksum, "\(id)/\(segment.index)/\(shard.index) on \(shard.node)")
            }
        }
        let index = try await metadata.list(prefix: Keyspace.placementsAll).filter { $0.key.hasSuffix("/" + id) }
        let placed = Set(manifest.segments.flatMap { $0.shards.map { Keyspace.placement($0.node, id) } })
        #expect(Set(index.map(\.key)) == placed, "the placement index follows the manifest")
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct RepairTests {
    @Test func aLostNodesShardsAreRebuiltElsewhereAndReadBackBitExact() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder)
            var random = SeededGenerator(seed: 21)
            var objects: [(String, [UInt8])] = []
            for (i, size) in [1, 70_000, 1 << 20, 3 * (1 << 20) + 77].enumerated() {
                let bytes = random.bytes(size)
                _ = try await cluster.upload(bytes, id: "object-\(i)")
                objects.append(("object-\(i)", bytes))
            }
            let victim = try #require(try await cluster.store.manifest("object-3").segments.first?.shards.first?.node)
            cluster.transport.setDown(victim.value, true)
            cluster.transport.wipe(victim.value)
            await cluster.topology.refresh()
            var planner = RepairPlanner(policy: cluster.store.policy, repairAfter: 0, epoch: 1)
            _ = planner.observe(up: Dictionary(uniqueKeysWithValues: cluster.nodes.map { ($0, $0 != victim) }), now: 0)
            var repaired = 0
            for (id, _) in objects {
                for directive in planner.plan(try await cluster.store.manifest(id), nodes: cluster.topology.descriptors(), suspects: []) {
                    let outcome = try await cluster.store.repairSegment(
                        objectId: id, segment: directive.segment, lostNodes: planner.condemned, suspects: [], fence: nil)
                    guard case .repaired(let read, let written, let nodes, let debt) = outcome else {
                        Issue.record("\(id)/\(directive.segment): \(outcome)")
                        continue
                    }
                    #expect(read == Int64(6 * directive.shardLength) && written == Int64(directive.lost.count * directive.shardLength))
                    #expect(!nodes.values.contains(victim) && !debt)
                    repaired += 1
                }
            }
            #expect(repaired > 0)
            for (id, bytes) in objects {
                try await cluster.checkFullRedundancy(id, excluding: [victim])
                #expect(try await cluster.download(id) == bytes)
                // Planned again: nothing left to do.
                #expect(planner.plan(try await cluster.store.manifest(id), nodes: cluster.topology.descriptors(), suspects: []).isEmpty)
            }
        }
    }

    @Test func aCorruptShardIsReportedByTheReadThatFindsItAndRebuilt() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder)
            let bytes = SeededGenerator(seed: 3).bytesOnce(2 * (1 << 20))
            let manifest = try await cluster.upload(bytes, id: "rotten")
            let location = manifest.segments[1].shards[2]
            let key = ObjectManifest.shardKey(object: "rotten", segment: 1, shard: 2)
            #expect(cluster.transport.corrupt(location.node.value, key: key, at: 1000))
            // The read is still right (parity stands in), and reports the shard.
            #expect(try await cluster.download("rotten") == bytes)
            let suspects = try await cluster.metadata.list(prefix: Keyspace.suspects)
            #expect(suspects.map(\.key) == [Keyspace.suspect(location.node, "rotten", segment: 1, shard: 2)])
            let refs: Set = [ShardRef(objectId: "rotten", segment: 1, shard: 2, node: location.node)]
            let outcome = try await cluster.store.repairSegment(objectId: "rotten", segment: 1, lostNodes: [], suspects: refs, fence: nil)
            guard case .repaired(_, _, let nodes, _) = outcome else { Issue.record("\(outcome)"); return }
            #expect(nodes.keys.sorted() == [2] && nodes[2] != location.node)
            #expect(try await cluster.metadata.list(prefix: Keyspace.suspects).isEmpty, "the repair clears the report")
            try await cluster.checkFullRedundancy("rotten", excluding: [])
            #expect(try await cluster.store.manifest("rotten").segments[1].shards[2].node == nodes[2])
            #expect(try await cluster.download("rotten") == bytes)
        }
    }

    @Test func aDeposedLeaderCannotApplyAStaleRepair() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder)
            let bytes = SeededGenerator(seed: 4).bytesOnce(1 << 20)
            let manifest = try await cluster.upload(bytes, id: "fenced")
            let logger = Logger(label: "test")
            let first = LeaderElection(coordinator: "c-fr", metadata: cluster.metadata, ttlSeconds: 1, logger: logger)
            let second = LeaderElection(coordinator: "c-de", metadata: cluster.metadata, ttlSeconds: 600, logger: logger)
            await first.step()
            await second.step()
            let old = try #require(first.current)
            #expect(old.epoch == 1 && second.current == nil)
            #expect(try await second.leader()?.coordinator == "c-fr")
            // The first stops renewing (paused); its lease runs out and the second takes over.
            let deadline = ContinuousClock.now + .seconds(10)
            while second.current == nil, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                await second.step()
            }
            let new = try #require(second.current)
            #expect(new.epoch == 2 && new.revision > old.revision)
            // Resumed, the first still believes it leads until its next round; a decision it
            // makes now is refused by the fence, and nothing changes.
            #expect(first.current != nil)
            let victim = manifest.segments[0].shards[0].node
            cluster.transport.setDown(victim.value, true)
            await cluster.topology.refresh()
            let stale = try await cluster.store.repairSegment(objectId: "fenced", segment: 0, lostNodes: [victim], suspects: [], fence: old.fence)
            guard case .conflict = stale else { Issue.record("stale repair was applied: \(stale)"); return }
            #expect(try await cluster.store.manifest("fenced") == manifest)
            await first.step()
            #expect(first.current == nil, "the first sees it lost the lead")
            let fresh = try await cluster.store.repairSegment(objectId: "fenced", segment: 0, lostNodes: [victim], suspects: [], fence: new.fence)
            guard case .repaired = fresh else { Issue.record("\(fresh)"); return }
            #expect(try await cluster.download("fenced") == bytes)
        }
    }

    @Test func writesGoToAlternatesWhenANodeIsFull() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await MemoryCluster(folder: folder)
            for node in ["fr-1", "de-2", "nz-3"] { cluster.transport.setFull(node, true) }
            let bytes = SeededGenerator(seed: 9).bytesOnce(3 * (1 << 20))
            let manifest = try await cluster.upload(bytes, id: "full")
            for segment in manifest.segments {
                #expect(!segment.shards.contains { ["fr-1", "de-2", "nz-3"].contains($0.node.value) })
            }
            #expect(try await cluster.download("full") == bytes)
        }
    }
}

extension SeededGenerator {
    func bytesOnce(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(count)
    }
}
