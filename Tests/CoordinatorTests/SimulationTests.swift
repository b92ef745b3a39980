import Checksum
import CoffreAPI
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

/// A deterministic simulation of the coordinators' background logic: three coordinators,
/// each with its own view of the nodes, its health monitor, leader election, repair worker
/// and garbage collector — the production types, stepped by hand — over in-memory nodes
/// (`InMemoryShardTransport`) and in-memory metadata (`InMemoryMetadataStore`), on one
/// simulated clock, for thousands of steps of a seeded schedule of faults: uploads, node
/// kills (some losing their disk), returns, bit rot found by reads, links cut between a
/// coordinator and a node, a coordinator cut from the metadata store, a coordinator frozen
/// and thawed (SIGSTOP), leaders resigning.
///
/// After every step it checks that no acknowledged object has fewer than k healthy shards,
/// that no shard a committed manifest references vanished from a node that kept its disk,
/// that epochs only grow and that at most one coordinator holds a valid fence. A failure
/// prints the seed; `COFFRE_TEST_SEED=N` replays it exactly: the schedule of faults, the
/// placement draws (a stream per decision) and time are the seed's, and every task of the
/// run — the concurrent shard reads and writes, the repairs of several objects at once —
/// runs on one `SerialTaskExecutor`, so they interleave in the same order every time. The
/// replay test holds that to account: two runs of one seed must agree step by step.
@Suite(.serialized, .timeLimit(.minutes(8))) struct SimulationTests {
    @Test func repairCollectionAndLeadershipUnderASeededScheduleOfFaults() async throws {
        let seed = SeededGenerator.seedFromEnvironment()
        print("[simulation] seed \(seed) (replay with COFFRE_TEST_SEED=\(seed))")
        let outcome = try await Simulation.run(seed: seed, steps: 2000)
        print("[simulation] seed \(seed): \(outcome)")
        #expect(outcome.segmentsRepaired > 0 && outcome.shardsCollected > 0 && outcome.epoch > 3, "seed \(seed): the schedule exercised repair, collection and leader changes: \(outcome)")
    }

    @Test func aSeedReplaysTheSameRunStepByStep() async throws {
        let seed = SeededGenerator.seedFromEnvironment() &+ 1
        print("[simulation] replay seed \(seed)")
        let first = try await Simulation.run(seed: seed, steps: 400, digestEveryStep: true)
        let second = try await Simulation.run(seed: seed, steps: 400, digestEveryStep: true)
        let diverged = zip(first.trace, second.trace).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(diverged == nil, "seed \(seed): the runs part at step \(diverged?.offset ?? -1): \(diverged.map { "\($0.element.0) vs \($0.element.1)" } ?? "")")
        #expect(first == second, "seed \(seed): \(first) vs \(second)")
        #expect(first.segmentsRepaired > 0, "seed \(seed): the replayed run repaired something: \(first)")
    }
}

/// The simulated clock: wall milliseconds, the monotonic reading derived from them, and
/// waits that cost nothing (the schedule moves time).
final class SimClock: Sendable {
    private let millis = Mutex<Int64>(1_800_000_000_000)
    var now: Int64 { millis.withLock { $0 } }
    func advance(_ delta: Int64) { millis.withLock { $0 += delta } }
    var work: WorkClock {
        WorkClock(wallMillis: { self.now }, monotonic: { .milliseconds(self.now) }, sleep: { _ in await Task.yield() })
    }
}

final class ManifestCache: Sendable {
    let entries = Mutex<[String: (Int64, ObjectManifest)]>([:])
}

/// One coordinator's links to the nodes, some of which can be cut.
final class CutLinks: ShardTransport {
    let inner: InMemoryShardTransport
    private let cut = Mutex<Set<String>>([])

    init(_ inner: InMemoryShardTransport) { self.inner = inner }

    func set(_ base: String, cut isCut: Bool) {
        cut.withLock { cut in
            if isCut { cut.insert(base) } else { cut.remove(base) }
        }
    }
    func healAll() { cut.withLock { $0.removeAll() } }

    private func check(_ base: String) throws(NodeClientError) {
        if cut.withLock({ $0.contains(base) }) { throw NodeClientError(.unavailable, "\(base): link cut") }
    }

    func put(base: String, key: [UInt8], body: ByteBuffer, checksum: UInt32) async throws(NodeClientError) {
        try check(base)
        try await inner.put(base: base, key: key, body: body, checksum: checksum)
    }

    func get(base: String, key: [UInt8], into buffer: inout ByteBuffer) async throws(NodeClientError) -> UInt32 {
        try check(base)
        return try await inner.get(base: base, key: key, into: &buffer)
    }

    func delete(base: String, key: [UInt8], ifCreatedAt: Int64?) async throws(NodeClientError) {
        try check(base)
        try await inner.delete(base: base, key: key, ifCreatedAt: ifCreatedAt)
    }

    func list(base: String, prefix: [UInt8], after: String?, limit: Int) async throws(NodeClientError) -> ShardPage {
        try check(base)
        return try await inner.list(base: base, prefix: prefix, after: after, limit: limit)
    }

    func health(base: String) async throws(NodeClientError) -> NodeHealth {
        try check(base)
        return try await inner.health(base: base)
    }

    func setFault(base: String, _ fault: NodeFault?) async throws(NodeClientError) {
        try check(base)
        try await inner.setFault(base: base, fault)
    }

    func scrub(base: String, after: String?, limit: Int) async throws(NodeClientError) -> ScrubStep {
        try check(base)
        return try await inner.scrub(base: base, after: after, limit: limit)
    }
}

/// One coordinator's link to the metadata store, which can be cut.
final class CutMetadata: MetadataStore {
    let inner: InMemoryMetadataStore
    private let isCut = Mutex(false)

    init(_ inner: InMemoryMetadataStore) { self.inner = inner }

    var cut: Bool {
        get { isCut.withLock { $0 } }
        set { isCut.withLock { $0 = newValue } }
    }

    private func check() throws(MetadataError) {
        if cut { throw MetadataError(.unavailable, "cut off from the metadata store") }
    }

    func get(_ key: String) async throws(MetadataError) -> MetadataEntry? {
        try check()
        return try await inner.get(key)
    }

    func list(prefix: String, after: String?, limit: Int) async throws(MetadataError) -> [MetadataEntry] {
        try check()
        return try await inner.list(prefix: prefix, after: after, limit: limit)
    }

    func commit(if conditions: [MetadataCondition], then mutations: [MetadataMutation]) async throws(MetadataError) -> Int64? {
        try check()
        return try await inner.commit(if: conditions, then: mutations)
    }

    func grantLease(ttlSeconds: Int) async throws(MetadataError) -> LeaseID {
        try check()
        return try await inner.grantLease(ttlSeconds: ttlSeconds)
    }

    func renewLease(_ lease: LeaseID) async throws(MetadataError) {
        try check()
        try await inner.renewLease(lease)
    }

    func revokeLease(_ lease: LeaseID) async throws(MetadataError) {
        try check()
        try await inner.revokeLease(lease)
    }

    func watch(prefix: String, fromRevision revision: Int64?) -> AsyncThrowingStream<MetadataEvent, any Error> {
        inner.watch(prefix: prefix, fromRevision: revision)
    }
}

/// One coordinator: the production services, stepped by the simulation.
struct SimCoordinator {
    let id: String
    let links: CutLinks
    let metadata: CutMetadata
    let topology: ClusterTopology
    let store: ObjectStore
    let health: HealthMonitor
    let election: LeaderElection
    let repair: RepairWorker
    let collector: GarbageCollector

    /// One round, in the order a running coordinator's services would interleave.
    func round(repairFirst: Bool) async {
        if repairFirst { await repair.step() }
        await health.step()
        await election.step()
        await repair.step()
        for _ in 0..<6 { await collector.step() }
    }
}

/// What a run ends with: equal for two runs of one seed.
struct SimulationOutcome: Equatable, CustomStringConvertible {
    var objects = 0
    var segmentsRepaired = 0
    var shardsCollected: Int64 = 0
    var decisionsRefused = 0
    var epoch: Int64 = 0
    /// CRC-32C of every committed manifest and every node's keys, in order.
    var digest: UInt32 = 0
    /// After each step: the metadata store's revision, and the counters so far.
    var trace: [String] = []

    var description: String {
        "\(objects) objects, \(segmentsRepaired) segments repaired, \(shardsCollected) shards collected, "
            + "\(decisionsRefused) decisions refused, epoch \(epoch), digest \(String(digest, radix: 16))"
    }
}

struct Simulation {
    /// Builds and runs a simulation of `steps` on a serial executor of its own; with
    /// `digestEveryStep`, the trace has a digest of every manifest and node after each step
    /// (half the run's time: for the replay test).
    static func run(seed: UInt64, steps: Int, digestEveryStep: Bool = false) async throws -> SimulationOutcome {
        let executor = SerialTaskExecutor(name: "simulation")
        defer { executor.shutdown() }
        return try await withTaskExecutorPreference(executor) {
            try await Simulation(seed: seed, executor: executor).run(steps: steps, digestEveryStep: digestEveryStep)
        }
    }

    let seed: UInt64
    let clock = SimClock()
    let decoded = ManifestCache()
    let transport: InMemoryShardTransport
    let metadata: InMemoryMetadataStore
    let members: [ClusterTopology.Member]
    let coordinators: [SimCoordinator]
    let policy: PlacementPolicy
    let downAfter: Int64 = 10_000
    let repairAfter: Int64 = 20_000

    init(seed: UInt64, executor: any TaskExecutor) async throws {
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
        members = list
        metadata = InMemoryMetadataStore(clock: clock.work)
        policy = try PlacementPolicy(erasure: ErasurePolicy(dataShards: 6, parityShards: 3))
        var logger = Logger(label: "simulation")
        logger.logLevel = .critical
        var coordinators: [SimCoordinator] = []
        for (index, id) in ["c-fr", "c-de", "c-ch"].enumerated() {
            let links = CutLinks(transport)
            let cut = CutMetadata(metadata)
            let topology = ClusterTopology(members: list, client: links, downAfter: .milliseconds(downAfter), clock: clock.work)
            let store = ObjectStore(
                topology: topology, metadata: cut, policy: policy, segmentSize: 16 << 10, hedgeAfter: .seconds(3600),
                collectorGrace: .seconds(60), placementRandom: RandomSource(seed: seed &+ UInt64(index)),
                executor: executor)
            let election = LeaderElection(coordinator: id, metadata: cut, ttlSeconds: 5, logger: logger, clock: clock.work)
            coordinators.append(SimCoordinator(
                id: id, links: links, metadata: cut, topology: topology, store: store,
                health: HealthMonitor(coordinator: id, topology: topology, metadata: cut, logger: logger),
                election: election,
                repair: RepairWorker(
                    objects: store, election: election,
                    settings: .init(downAfterMilliseconds: downAfter, repairAfterMilliseconds: repairAfter, budgetBytesPerSecond: 1 << 40),
                    logger: logger),
                collector: GarbageCollector(objects: store, election: election, settings: .init(grace: .seconds(60), pageSize: 50), logger: logger)))
        }
        self.coordinators = coordinators
        for coordinator in coordinators { await coordinator.topology.refresh() }
    }

    /// Faults in force, and until which step.
    struct Faults {
        var down: [NodeID: Int64] = [:]
        var wiped = Set<NodeID>()
        var cutFromMetadata: (coordinator: Int, until: Int)?
        var frozen: (coordinator: Int, until: Int)?
        var cutLinks: [(coordinator: Int, node: String, until: Int)] = []
    }

    func run(steps: Int, digestEveryStep: Bool) async throws -> SimulationOutcome {
        var random = SeededGenerator(seed: seed)
        var objects: [String: [UInt8]] = [:]
        var faults = Faults()
        var outcome = SimulationOutcome()
        var epoch: Int64 = 0
        // Each worker's counters start afresh in every term: what is added is counted.
        var lastRepair = coordinators.map { _ in (repaired: 0, refused: 0, epoch: Int64(0)) }
        var lastCollector = coordinators.map { _ in (deleted: Int64(0), epoch: Int64(0)) }
        for step in 0..<steps {
            let context = "seed \(seed) step \(step)"
            let thawed = heal(&faults, at: step)
            let live = coordinators.indices.filter { faults.frozen?.coordinator != $0 }
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<28:
                let via = coordinators[live.randomElement(using: &random)!]
                let id = "o\(step)"
                let bytes = random.bytes(Int.random(in: 1...40_000, using: &random))
                if (try? await upload(bytes, id: id, via: via)) == true { objects[id] = bytes }
            case 28..<32 where try await nodesOut(faults) < 2:
                let victim = members.map(\.id).filter { faults.down[$0] == nil }.randomElement(using: &random)!
                transport.setDown(victim.value, true)
                faults.down[victim] = clock.now
                if Bool.random(using: &random) {
                    transport.wipe(victim.value)
                    faults.wiped.insert(victim)
                }
            case 32..<42 where !faults.down.isEmpty:
                // A node that lost its disk comes back with a new store: the leader sees it,
                // rebuilds what was placed there elsewhere, and trusts the new store later.
                let back = faults.down.keys.sorted().randomElement(using: &random)!
                transport.setDown(back.value, false)
                faults.down[back] = nil
            case 42..<47 where !objects.isEmpty:
                // Bit rot in a data shard, found by the next read, which goes through a
                // coordinator that reaches the metadata store.
                let id = objects.keys.sorted().randomElement(using: &random)!
                let manifest = try await committed(id)
                let segment = manifest.segments.randomElement(using: &random)!
                let shard = segment.shards[Int.random(in: 0..<6, using: &random)]
                let readers = live.filter { faults.cutFromMetadata?.coordinator != $0 }
                if let reader = readers.randomElement(using: &random), healthy(manifest).allSatisfy({ $0 == 9 }) {
                    _ = transport.corrupt(shard.node.value, key: ObjectManifest.shardKey(object: id, segment: segment.index, shard: shard.index))
                    #expect(try await download(id, via: coordinators[reader]) == objects[id], "\(context): a read through rot")
                }
            case 47..<49:
                for coordinator in coordinators where coordinator.election.current != nil { await coordinator.election.resign() }
            case 49..<52 where faults.cutFromMetadata == nil:
                let victim = live.randomElement(using: &random)!
                coordinators[victim].metadata.cut = true
                faults.cutFromMetadata = (victim, step + Int.random(in: 2...12, using: &random))
            case 52..<57:
                let coordinator = Int.random(in: 0..<coordinators.count, using: &random)
                let node = members.randomElement(using: &random)!.url
                coordinators[coordinator].links.set(node, cut: true)
                faults.cutLinks.append((coordinator, node, step + Int.random(in: 1...8, using: &random)))
            case 57..<59 where faults.frozen == nil:
                // Freeze the leader, if there is one: it sleeps through its lease.
                let leader = coordinators.indices.first { coordinators[$0].election.current != nil } ?? live.randomElement(using: &random)!
                faults.frozen = (leader, step + Int.random(in: 3...10, using: &random))
            default:
                break
            }
            clock.advance(Int64.random(in: 1_000...5_000, using: &random))
            for index in coordinators.indices where faults.frozen?.coordinator != index {
                // A coordinator thawed this step acts before it hears it lost its lease.
                await coordinators[index].round(repairFirst: index == thawed)
            }
            for (index, coordinator) in coordinators.enumerated() {
                let repair = coordinator.repair.status()
                let collector = coordinator.collector.status()
                let last = lastRepair[index].epoch == repair.epoch ? lastRepair[index] : (repaired: 0, refused: 0, epoch: repair.epoch)
                outcome.segmentsRepaired += repair.segmentsRepaired - last.repaired
                outcome.decisionsRefused += repair.decisionsRefused - last.refused
                lastRepair[index] = (repair.segmentsRepaired, repair.decisionsRefused, repair.epoch)
                let collected = lastCollector[index].epoch == collector.epoch ? lastCollector[index].deleted : 0
                outcome.shardsCollected += collector.shardsDeleted - collected
                lastCollector[index] = (collector.shardsDeleted, collector.epoch)
            }
            try await checkInvariants(objects, faults, &epoch, context)
            let state = digestEveryStep ? String(try await digest(), radix: 16) : "-"
            outcome.trace.append("\(metadata.revision) \(state) \(objects.count) \(outcome.segmentsRepaired) \(outcome.shardsCollected) \(outcome.decisionsRefused)")
        }

        // Every fault lifted: the cluster converges to full redundancy by itself, and every
        // node, wiped ones included, is trusted with its store again.
        heal(&faults, at: Int.max)
        for node in faults.down.keys.sorted() { transport.setDown(node.value, false) }
        faults.down = [:]
        var converged = false
        for _ in 0..<200 {
            clock.advance(5_000)
            for coordinator in coordinators { await coordinator.round(repairFirst: false) }
            var whole = true
            let nodes = transport.snapshot()
            for id in objects.keys.sorted() where whole { whole = healthy(try await committed(id), nodes).allSatisfy { $0 == 9 } }
            if whole, try await trustsEveryStore() {
                converged = true
                break
            }
        }
        #expect(converged, "seed \(seed): full redundancy once every fault is lifted")
        for (id, bytes) in objects.sorted(by: { $0.key < $1.key }) {
            #expect(try await download(id, via: coordinators[0]) == bytes, "seed \(seed): \(id) at the end")
        }
        outcome.objects = objects.count
        outcome.epoch = epoch
        outcome.digest = try await digest()
        return outcome
    }

    /// Lifts the faults whose time is up.
    /// - Returns: the coordinator thawed now, if any.
    @discardableResult
    private func heal(_ faults: inout Faults, at step: Int) -> Int? {
        var thawed: Int?
        if let cut = faults.cutFromMetadata, cut.until <= step {
            coordinators[cut.coordinator].metadata.cut = false
            faults.cutFromMetadata = nil
        }
        if let frozen = faults.frozen, frozen.until <= step {
            thawed = frozen.coordinator
            faults.frozen = nil
        }
        faults.cutLinks.removeAll { link in
            guard link.until <= step else { return false }
            coordinators[link.coordinator].links.set(link.node, cut: false)
            return true
        }
        // Two links to one node may have been cut: each heals on its own time, the set
        // is recomputed from what is left.
        for (index, coordinator) in coordinators.enumerated() {
            coordinator.links.healAll()
            for link in faults.cutLinks where link.coordinator == index { coordinator.links.set(link.node, cut: true) }
        }
        return thawed
    }

    private func checkInvariants(_ objects: [String: [UInt8]], _ faults: Faults, _ epoch: inout Int64, _ context: String) async throws {
        let nodes = transport.snapshot()
        for id in objects.keys.sorted() {
            let manifest = try await committed(id)
            for (index, count) in healthy(manifest, nodes).enumerated() {
                #expect(count >= 6, "\(context): \(id) segment \(index) has \(count) healthy shards")
            }
            for segment in manifest.segments {
                for shard in segment.shards where faults.down[shard.node] == nil && !faults.wiped.contains(shard.node) {
                    let key = ObjectManifest.shardKey(object: id, segment: segment.index, shard: shard.index)
                    #expect(nodes[shard.node.value]?.shards[key] != nil, "\(context): referenced shard \(id)/\(segment.index)/\(shard.index) gone from \(shard.node)")
                }
            }
        }
        let record = try await metadata.get(Keyspace.leader)
        if let record, let leader = try? JSONDecoder().decode(LeaderRecord.self, from: Data(record.value)) {
            #expect(leader.epoch >= epoch, "\(context): epochs only grow")
            epoch = leader.epoch
        }
        let fenced = coordinators.filter { $0.election.current.map { $0.revision == record?.modRevision } ?? false }
        #expect(fenced.count <= 1, "\(context): \(fenced.map(\.id)) all hold a valid fence")
    }

    /// Healthy shards per segment: on a node that is up, with the manifest's checksum.
    func healthy(_ manifest: ObjectManifest, _ nodes: [String: InMemoryShardTransport.Node]? = nil) -> [Int] {
        let nodes = nodes ?? transport.snapshot()
        return manifest.segments.map { segment in
            Set(segment.shards.filter { shard in
                guard let node = nodes[shard.node.value], !node.down,
                    let stored = node.shards[ObjectManifest.shardKey(object: manifest.id, segment: segment.index, shard: shard.index)]
                else { return false }
                return stored.checksum == shard.checksum && !stored.rotten
            }.map(\.node)).count
        }
    }

    /// The committed manifest (decoded once per revision: the checks read every manifest
    /// after every step).
    func committed(_ id: String) async throws -> ObjectManifest {
        let entry = try #require(try await metadata.get(Keyspace.manifest(id)))
        if let (revision, manifest) = decoded.entries.withLock({ $0[id] }), revision == entry.modRevision { return manifest }
        let manifest = try JSONDecoder().decode(ObjectManifest.self, from: Data(entry.value))
        decoded.entries.withLock { $0[id] = (entry.modRevision, manifest) }
        return manifest
    }

    /// Whether the leader recorded every node's current store as the one placements refer to.
    func trustsEveryStore() async throws -> Bool {
        for member in members where !(try await trusts(member)) { return false }
        return true
    }

    func trusts(_ member: ClusterTopology.Member) async throws -> Bool {
        let live = transport.incarnation(member.id.value)
        return try await metadata.get(Keyspace.disk(member.id))?.value == Array(live.utf8)
    }

    /// Nodes whose shards are out of reach: down, or back with a new store the leader does
    /// not trust yet (not all of its old shards rebuilt elsewhere). The schedule keeps this
    /// under m = 3, within the policy.
    func nodesOut(_ faults: Faults) async throws -> Int {
        var out = faults.down.count
        for member in members where faults.down[member.id] == nil && faults.wiped.contains(member.id) {
            if !(try await trusts(member)) { out += 1 }
        }
        return out
    }

    /// Writes an object through one coordinator and commits it as an upload does (manifest,
    /// placement index, the collector's guard). True when acknowledged.
    func upload(_ bytes: [UInt8], id: String, via coordinator: SimCoordinator) async throws -> Bool {
        let writer = coordinator.store.makeWriter(objectId: id, owner: "sim")
        try await writer.append(ByteBuffer(bytes: bytes))
        let manifest = try await writer.finish()
        let guarded = try writer.commitGuard()
        try await coordinator.metadata.applyInChunks(coordinator.store.placementEntries(id, on: manifest.segments.flatMap { $0.shards.map(\.node) }))
        return try await coordinator.metadata.commit(
            if: [.absent(Keyspace.manifest(id))] + guarded.conditions,
            then: [.put(Keyspace.manifest(id), Array(try JSONEncoder().encode(manifest)))] + guarded.mutations) != nil
    }

    func download(_ id: String, via coordinator: SimCoordinator) async throws -> [UInt8] {
        let manifest = try await coordinator.store.manifest(id)
        var out: [UInt8] = []
        try await coordinator.store.read(manifest) { out += Array(buffer: $0) }
        return out
    }

    /// Every committed manifest and every node's keys, in order.
    func digest() async throws -> UInt32 {
        var bytes: [UInt8] = []
        var after: String?
        repeat {
            let page = try await metadata.list(prefix: Keyspace.manifests, after: after, limit: Limits.metadataListPageMax)
            // Re-encoded with sorted keys: the encoder's key order differs from run to run.
            let canonical = JSONEncoder()
            canonical.outputFormatting = .sortedKeys
            for entry in page {
                bytes += Array(entry.key.utf8) + Array(try canonical.encode(try JSONDecoder().decode(ObjectManifest.self, from: Data(entry.value))))
            }
            after = page.count == Limits.metadataListPageMax ? page.last?.key : nil
        } while after != nil
        for member in members {
            for key in transport.keys(member.id.value) { bytes += Array(member.id.value.utf8) + key }
        }
        return bytes.withUnsafeBytes { CRC32C.checksum($0) }
    }
}
