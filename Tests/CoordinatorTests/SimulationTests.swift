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

/// A deterministic simulation of the background logic: the coordinator's repair (the pure
/// planner and the shared object path), its garbage collector and leadership, against
/// in-memory nodes with injected faults and real embedded metadata, on a simulated clock, for
/// `steps` steps of a seeded schedule: uploads, node kills (some losing their disk), returns,
/// bit rot, leader changes. After every step it checks that no acknowledged object has fewer
/// than k healthy shards, that no referenced shard vanished from a node that never lost its
/// disk, and that epochs only grow. A failure prints the seed; `COFFRE_TEST_SEED=N` replays it
/// (placement's randomness is seeded too; task scheduling is the one thing not replayed).
@Suite(.serialized, .timeLimit(.minutes(5))) struct SimulationTests {
    final class SimClock: Sendable {
        let millis = Mutex<Int64>(1_000_000)
        var now: Int64 { millis.withLock { $0 } }
        func advance(_ delta: Int64) { millis.withLock { $0 += delta } }
    }

    @Test func repairCollectionAndLeadershipUnderASeededScheduleOfFaults() async throws {
        let seed = SeededGenerator.seedFromEnvironment()
        print("[simulation] seed \(seed) (replay with COFFRE_TEST_SEED=\(seed))")
        try await withTemporaryDirectory { folder in
            try await Simulation(seed: seed, folder: folder).run(steps: 1000)
        }
    }

    struct Simulation {
        let seed: UInt64
        let clock = SimClock()
        let transport: InMemoryShardTransport
        let topology: ClusterTopology
        let metadata: EmbeddedMetadataStore
        let store: ObjectStore
        let members: [NodeID]
        let elections: [LeaderElection]
        let collectors: [GarbageCollector]
        let repairAfter: Int64 = 20_000

        init(seed: UInt64, folder: String) async throws {
            self.seed = seed
            let clock = self.clock
            let transport = InMemoryShardTransport(clock: { clock.now })
            self.transport = transport
            var list: [ClusterTopology.Member] = []
            for code in ["FR", "DE", "CH", "NZ"] {
                for n in 1...3 {
                    let id = "\(code.lowercased())-\(n)"
                    let base = transport.addNode(id: id, country: code, region: id)
                    list.append(.init(id: try NodeID(id), country: try Country(code), region: id, url: base))
                }
            }
            members = list.map(\.id)
            let topology = ClusterTopology(members: list, client: transport, downAfter: .seconds(3600))
            self.topology = topology
            await topology.refresh()
            let metadata = try EmbeddedMetadataStore(path: folder + "/metadata")
            self.metadata = metadata
            store = ObjectStore(
                topology: topology, metadata: metadata, policy: try PlacementPolicy(erasure: ErasurePolicy(dataShards: 6, parityShards: 3)),
                segmentSize: 16 << 10, hedgeAfter: .seconds(30), placementRandom: RandomSource(seed: seed))
            var logger = Logger(label: "simulation")
            logger.logLevel = .warning
            let elections = ["c-1", "c-2"].map { LeaderElection(coordinator: $0, metadata: metadata, ttlSeconds: 3600, logger: logger) }
            let store = self.store
            collectors = elections.map { GarbageCollector(objects: store, election: $0, settings: .init(grace: .seconds(60), pageSize: 50), logger: logger) }
            self.elections = elections
        }

        func run(steps: Int) async throws {
            var random = SeededGenerator(seed: seed)
            var objects: [String: [UInt8]] = [:]
            var down: [NodeID: Int64] = [:]
            var wiped = Set<NodeID>()
            var planner: RepairPlanner?
            var epoch: Int64 = 0
            var repairs = 0
            var manifests: [String: ObjectManifest] = [:]
            var collected: Int64 = 0
            await elections[0].step()
            for step in 0..<steps {
                let context = "seed \(seed) step \(step)"
                let roll = Int.random(in: 0..<100, using: &random)
                switch roll {
                case 0..<30:
                    let id = "o\(step)"
                    let bytes = random.bytes(Int.random(in: 1...30_000, using: &random))
                    if (try? await upload(bytes, id: id)) != nil {
                        objects[id] = bytes
                        manifests[id] = try await store.manifest(id)
                    }
                case 30..<34 where down.count < 2:
                    let victim = members.filter { down[$0] == nil }.randomElement(using: &random)!
                    transport.setDown(victim.value, true)
                    topology.reportFailure(victim)
                    down[victim] = clock.now
                    if Bool.random(using: &random) {
                        transport.wipe(victim.value)
                        wiped.insert(victim)
                    }
                case 34..<44 where !down.isEmpty:
                    // A node that lost its disk comes back only once it was lost and rebuilt
                    // elsewhere (a replaced disk); one that kept it may come back any time.
                    let back = down.keys.sorted().randomElement(using: &random)!
                    guard !wiped.contains(back) || clock.now - down[back]! > repairAfter + 10_000 else { break }
                    transport.setDown(back.value, false)
                    down[back] = nil
                    await topology.refresh()
                case 44..<49 where !objects.isEmpty:
                    // Bit rot on one shard of an object, found by the next read of it.
                    let id = objects.keys.sorted().randomElement(using: &random)!
                    let manifest = try await store.manifest(id)
                    let segment = manifest.segments.randomElement(using: &random)!
                    // A data shard: the read right after asks for it, and reports it.
                    let shard = segment.shards[Int.random(in: 0..<6, using: &random)]
                    if down[shard.node] == nil, try await healthy(manifest).allSatisfy({ $0 == 9 }) {
                        transport.corrupt(shard.node.value, key: ObjectManifest.shardKey(object: id, segment: segment.index, shard: shard.index))
                        #expect(try await download(id) == objects[id], "\(context): a read through rot")
                    }
                case 49..<51:
                    let leader = elections.first { $0.current != nil }
                    await leader?.resign()
                    for election in elections.shuffled(using: &random) where elections.allSatisfy({ $0.current == nil }) { await election.step() }
                default:
                    break
                }
                clock.advance(Int64.random(in: 1_000...5_000, using: &random))

                // The leader's round: repair, then a few collector steps.
                guard let leader = elections.firstIndex(where: { $0.current != nil }), let term = elections[leader].current else {
                    await elections[0].step()
                    continue
                }
                #expect(term.epoch >= epoch, "\(context): epochs only grow")
                if term.epoch != epoch {
                    epoch = term.epoch
                    planner = RepairPlanner(policy: store.policy, repairAfter: repairAfter, epoch: epoch)
                }
                _ = planner!.observe(down: Dictionary(uniqueKeysWithValues: members.map { ($0, down[$0]) }), now: clock.now)
                let touched = try await repairRound(planner: planner!, term: term, down: down)
                repairs += touched.count
                for id in Set(touched) { manifests[id] = try await store.manifest(id) }
                let before = collectors[leader].status().shardsDeleted
                for _ in 0..<10 { await collectors[leader].step(now: clock.now) }
                collected += max(0, collectors[leader].status().shardsDeleted - before)

                // Invariants.
                for id in objects.keys.sorted() {
                    let manifest = manifests[id]!
                    for (index, count) in try await healthy(manifest).enumerated() {
                        #expect(count >= 6, "\(context): \(id) segment \(index) has \(count) healthy shards")
                    }
                    for segment in manifest.segments {
                        for shard in segment.shards where down[shard.node] == nil && !wiped.contains(shard.node) {
                            let key = ObjectManifest.shardKey(object: id, segment: segment.index, shard: shard.index)
                            #expect(transport.shard(shard.node.value, key: key) != nil, "\(context): referenced shard \(id)/\(segment.index)/\(shard.index) gone from \(shard.node)")
                        }
                    }
                }
            }
            // Everything back, one last round: every object whole and bit-exact.
            for node in down.keys { transport.setDown(node.value, false) }
            await topology.refresh()
            for (id, bytes) in objects { #expect(try await download(id) == bytes, "seed \(seed): \(id) at the end") }
            print("[simulation] seed \(seed): \(objects.count) objects, \(repairs) segment repairs, \(collected) shards collected, epoch \(epoch)")
            #expect(repairs > 0 && collected > 0, "seed \(seed): the schedule exercised repair and collection")
        }

        /// One repair round of the leader: every segment with a lost or suspect shard.
        /// - Returns: the object of every segment repaired.
        func repairRound(planner: RepairPlanner, term: LeaderTerm, down: [NodeID: Int64]) async throws -> [String] {
            var suspects = Set<ShardRef>()
            for entry in try await metadata.list(prefix: Keyspace.suspects) {
                let parts = entry.key.split(separator: "/")
                suspects.insert(ShardRef(objectId: String(parts[2]), segment: Int(parts[3])!, shard: Int(parts[4])!, node: try NodeID(String(parts[1]))))
            }
            var ids = Set(suspects.map(\.objectId))
            for node in planner.condemned {
                for entry in try await metadata.list(prefix: Keyspace.placements(node)) { ids.insert(String(entry.key.split(separator: "/").last!)) }
            }
            let nodes = topology.descriptors().map { node in
                var node = node
                node.isUp = down[node.id] == nil
                return node
            }
            var queue = RepairQueue()
            for id in ids {
                guard let manifest = try? await store.manifest(id) else { continue }
                for directive in planner.plan(manifest, nodes: nodes, suspects: suspects) { queue.insert(directive) }
            }
            var repaired: [String] = []
            while let directive = queue.popRepairable() {
                let outcome = try await store.repairSegments(
                    objectId: directive.objectId, segments: [directive.segment], lostNodes: planner.condemned, suspects: suspects, fence: term.fence)
                if case .repaired = outcome { repaired.append(directive.objectId) }
            }
            return repaired
        }

        /// Healthy shards per segment: on an up node, with the manifest's checksum.
        func healthy(_ manifest: ObjectManifest) async throws -> [Int] {
            manifest.segments.map { segment in
                segment.shards.filter { shard in
                    guard topology.isUp(shard.node),
                        let stored = transport.shard(shard.node.value, key: ObjectManifest.shardKey(object: manifest.id, segment: segment.index, shard: shard.index))
                    else { return false }
                    return stored.checksum == shard.checksum && stored.body.withUnsafeBytes { CRC32C.checksum($0) } == shard.checksum
                }.count
            }
        }

        func upload(_ bytes: [UInt8], id: String) async throws {
            let writer = store.makeWriter(objectId: id, owner: "sim")
            try await writer.append(ByteBuffer(bytes: bytes))
            let manifest = try await writer.finish()
            var mutations: [MetadataMutation] = [.put(Keyspace.manifest(id), Array(try JSONEncoder().encode(manifest)))]
            for node in Set(manifest.segments.flatMap { $0.shards.map(\.node) }) { mutations.append(.put(Keyspace.placement(node, id), [])) }
            _ = try await metadata.commit(if: [.absent(Keyspace.manifest(id))], then: mutations)
        }

        func download(_ id: String) async throws -> [UInt8] {
            let manifest = try await store.manifest(id)
            var out: [UInt8] = []
            try await store.read(manifest) { out += Array(buffer: $0) }
            return out
        }
    }
}
