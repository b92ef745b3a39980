import AsyncHTTPClient
import ClusterTLS
import NIOCore
import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import LocalCluster
import Testing
import TestSupport

extension SeededGenerator {
    func bytesOnce(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(count)
    }
}

/// Self-healing on a real cluster (3 etcd members, 4 coordinators, 12 nodes in 4 countries,
/// RS(6,3)), with real faults: processes killed with SIGKILL. Short timings: a node is down
/// after 3 s without news and lost after 2 s more; a dead leader is replaced within ~2 s.
/// The collector's grace is long enough that a loaded machine's pauses cannot cost an upload
/// its intent; the tests of collection shorten it.
func healingTopology(_ name: String, gcGraceSeconds: Int = 30, capacityBytes: Int64 = 4 << 30) -> ClusterTopologyFile {
    ClusterTopologyFile(
        name: name,
        countries: [
            .init(code: "FR", region: "fr-paris", nodes: 3, capacityBytes: capacityBytes),
            .init(code: "DE", region: "de-frankfurt", nodes: 3, capacityBytes: capacityBytes),
            .init(code: "CH", region: "ch-zurich", nodes: 3, capacityBytes: capacityBytes),
            .init(code: "NZ", region: "nz-auckland", nodes: 3, capacityBytes: capacityBytes),
        ],
        etcdCountries: ["FR", "DE", "CH"], policy: .init(k: 6, m: 3, margin: 0), segmentSizeBytes: 2 << 20,
        quotaBytesDefault: 1 << 30, basePort: freePortBlock(count: 6), downAfterSeconds: 3,
        repairAfterSeconds: 2, repairBudgetBytesPerSecond: 500_000_000, leaderLeaseSeconds: 2, gcGraceSeconds: gcGraceSeconds)
}

/// Bytes the manifests reference, against bytes the nodes hold (as the coordinator last
/// heard): equal once nothing unreferenced is left.
func storedAndReferenced(_ client: CoffreClient, _ manifests: [ObjectManifest]) async throws -> (stored: Int64, referenced: Int64) {
    let stored = try await client.adminStatus().nodes.filter(\.up).reduce(0) { $0 + $1.usedBytes }
    let referenced = manifests.reduce(Int64(0)) { total, manifest in
        total + manifest.segments.reduce(0) { $0 + Int64($1.shardLength * $1.shards.count) }
    }
    return (stored, referenced)
}

/// A new account, signed in through `client`.
func newAccount(_ client: CoffreClient, _ user: String) async throws -> Session {
    _ = try await client.register(username: user, password: "pw for \(user)", parameters: .minimum)
    return try await client.login(username: user, password: "pw for \(user)")
}

/// A healing cluster with an account signed in through the coordinator of `country`: what
/// every test here starts from. The body gets the cluster, that client, the session and a
/// scratch folder.
func withHealingCluster(
    _ name: String, gcGraceSeconds: Int = 30, capacityBytes: Int64 = 4 << 30, via country: String, user: String,
    _ body: (RunningCluster, CoffreClient, Session, String) async throws -> Void
) async throws {
    try await withTemporaryDirectory { folder in
        let running = try await RunningCluster(
            folder: folder, topology: healingTopology(name, gcGraceSeconds: gcGraceSeconds, capacityBytes: capacityBytes))
        await running.run { running in
            let client = try running.client(via: country)
            try await body(running, client, newAccount(client, user), folder)
        }
    }
}

/// Files uploaded through one client, to check after the faults.
struct StoredFiles {
    var files: [(path: String, bytes: [UInt8])] = []

    mutating func upload(_ client: CoffreClient, _ session: Session, folder: String, sizes: [Int], seed: UInt64, prefix: String) async throws {
        var random = SeededGenerator(seed: seed)
        for (i, size) in sizes.enumerated() {
            let bytes = random.bytes(size)
            let local = folder + "/\(prefix)-\(i)"
            try Data(bytes).write(to: URL(fileURLWithPath: local))
            _ = try await client.upload(local, to: "/\(prefix)-\(i)", session)
            files.append(("/\(prefix)-\(i)", bytes))
        }
    }

    /// Every file reads back bit-exact through `client`.
    func verify(_ client: CoffreClient, _ session: Session, folder: String) async throws {
        for (path, bytes) in files {
            let local = folder + "/check" + path.replacingOccurrences(of: "/", with: "-")
            try await client.download(path, to: local, session)
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: local))) == bytes, "\(path)")
        }
    }

    /// The manifest of every file.
    func manifests(_ client: CoffreClient, _ session: Session) async throws -> [ObjectManifest] {
        var manifests: [ObjectManifest] = []
        for (path, _) in files {
            let objectId = try #require(try await client.list(path, session).first?.objectId)
            manifests.append(try await client.adminObject(objectId))
        }
        return manifests
    }
}

/// Waits until `condition` holds, polling every 250 ms, for at most `seconds`.
func awaitCondition(_ what: String, seconds: Int, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(250))
    }
    throw LocalClusterError("timed out after \(seconds) s waiting for: \(what)")
}

/// Every segment has k + m shards on distinct nodes that are up and outside `gone`.
func fullyRedundant(_ manifests: [ObjectManifest], up: Set<String>, gone: Set<String>) -> Bool {
    manifests.allSatisfy { manifest in
        manifest.segments.allSatisfy { segment in
            let nodes = segment.shards.map(\.node.value)
            return Set(nodes).count == manifest.policy.totalShards && nodes.allSatisfy { up.contains($0) && !gone.contains($0) }
        }
    }
}

extension RealClusters {
    @Suite(.serialized, .timeLimit(.minutes(6))) struct SelfHealingTests {
        @Test func aKilledNodesShardsAreRebuiltElsewhereWithNobodyActing() async throws {
            try await withHealingCluster("heal-node", via: "FR", user: "carol") { running, fr, session, folder in
                var stored = StoredFiles()
                try await stored.upload(fr, session, folder: folder, sizes: [9 << 20, 1 << 20, 100, 0], seed: 7, prefix: "before")
                let victim = try #require(try await stored.manifests(fr, session).first?.segments.first?.shards.first?.node.value)
                let epoch = try await fr.adminRepairStatus().epoch
                try running.cluster.kill9("node \(victim)")
                let started = ContinuousClock.now

                // Writes go on during the outage (to other nodes) and are healed with the rest.
                let nz = try running.client(via: "NZ")
                try await stored.upload(nz, session, folder: folder, sizes: [3 << 20], seed: 8, prefix: "during")

                let up = Set(try await fr.adminStatus().nodes.filter { $0.id != victim }.map(\.id))
                try await awaitCondition("every segment has 9 shards on up nodes", seconds: 90) {
                    fullyRedundant(try await stored.manifests(fr, session), up: up, gone: [victim])
                }
                print("[self-healing] node \(victim) killed; full redundancy after \(ContinuousClock.now - started)")
                // Counters start afresh in each term (a loaded machine may change leaders meanwhile),
                // and another coordinator sees them as the leader last published them (each second).
                try await awaitCondition("the repair is counted", seconds: 15) {
                    let status = try await nz.adminRepairStatus()
                    return status.leader != nil && (status.segmentsRepaired > 0 || status.epoch > epoch) && status.lostNodes.contains(victim)
                }
                try await awaitCondition("the repair queue drains", seconds: 30) { try await nz.adminRepairStatus().queuedSegments == 0 }
                try await stored.verify(try running.client(via: "CH"), session, folder: folder)
            }
        }

        @Test func aNodeBackWithAWipedDiskHasItsShardsRebuiltThenTakesNewOnes() async throws {
            try await withHealingCluster("heal-wipe", gcGraceSeconds: 10, via: "CH", user: "gina") { running, ch, session, folder in
                var stored = StoredFiles()
                try await stored.upload(ch, session, folder: folder, sizes: [6 << 20, 300_000], seed: 21, prefix: "before")
                let victim = try #require(try await stored.manifests(ch, session).first?.segments.first?.shards.first?.node.value)
                let epoch = try await ch.adminRepairStatus().epoch
                // The disk is replaced: the node comes back at once, empty, under its name,
                // before anyone finds it down. Only its store's incarnation tells.
                try running.cluster.kill9("node \(victim)")
                try FileManager.default.removeItem(atPath: running.cluster.folder + "/data/" + victim)
                try await running.cluster.start(["node \(victim)"])
                let started = ContinuousClock.now
                try await awaitCondition("no manifest places a shard on the wiped node", seconds: 90) {
                    try await stored.manifests(ch, session).allSatisfy { manifest in
                        manifest.segments.allSatisfy { !$0.shards.contains { $0.node.value == victim } }
                    }
                }
                print("[self-healing] node \(victim) back with an empty disk; its shards rebuilt elsewhere after \(ContinuousClock.now - started)")
                let up = Set(try await ch.adminStatus().nodes.filter(\.up).map(\.id))
                #expect(up.contains(victim))
                // The leader publishes its counters once a second: another coordinator may lag.
                try await awaitCondition("the repair is counted", seconds: 15) {
                    let status = try await ch.adminRepairStatus()
                    return status.segmentsRepaired > 0 || status.epoch > epoch
                }
                #expect(fullyRedundant(try await stored.manifests(ch, session), up: up, gone: [victim]))
                try await stored.verify(try running.client(via: "DE"), session, folder: folder)

                // After the collector's grace, with nothing placed on its old store, the node
                // is trusted again and new shards go there.
                var round: UInt64 = 0
                try await awaitCondition("the node takes new shards again", seconds: 90) {
                    round += 1
                    try await stored.upload(ch, session, folder: folder, sizes: [1 << 20], seed: 100 + round, prefix: "after-\(round)")
                    let after = try #require(try await stored.manifests(ch, session).last)
                    return after.segments.contains { $0.shards.contains { $0.node.value == victim } }
                }
                #expect(try await ch.adminRepairStatus().replacedNodes.isEmpty)
                try await stored.verify(try running.client(via: "NZ"), session, folder: folder)
            }
        }

        @Test func aKilledCountryIsRebuiltInTheOthers() async throws {
            try await withHealingCluster("heal-country", gcGraceSeconds: 10, via: "DE", user: "dave") { running, de, session, folder in
                var stored = StoredFiles()
                try await stored.upload(de, session, folder: folder, sizes: [7 << 20, 200_000, 1], seed: 9, prefix: "before")
                // France goes: its coordinator, its etcd member and its three nodes.
                for name in ["coordinator FR", "etcd FR", "node fr-1", "node fr-2", "node fr-3"] { try running.cluster.kill9(name) }
                let started = ContinuousClock.now
                try await stored.upload(de, session, folder: folder, sizes: [2 << 20], seed: 10, prefix: "during")
                let france: Set = ["fr-1", "fr-2", "fr-3"]
                let up = Set(try await de.adminStatus().nodes.map(\.id)).subtracting(france)
                try await awaitCondition("every segment has 9 shards in the three countries left", seconds: 120) {
                    fullyRedundant(try await stored.manifests(de, session), up: up, gone: france)
                }
                print("[self-healing] France killed; full redundancy after \(ContinuousClock.now - started)")
                // Nine nodes in three countries: three shards in each, within the rule.
                for manifest in try await stored.manifests(de, session) {
                    for segment in manifest.segments {
                        let perCountry = Dictionary(grouping: segment.shards, by: { $0.node.value.prefix(2) }).mapValues(\.count)
                        #expect(perCountry.values.allSatisfy { $0 <= 3 } && !segment.placementDebt, "\(perCountry)")
                    }
                }
                try await stored.verify(try running.client(via: "NZ"), session, folder: folder)
                try await awaitCondition("France is evacuated", seconds: 30) {
                    try await de.adminCountries().countries.first { $0.country == "FR" }?.state == "evacuated"
                }
                let others = try await de.adminCountries().countries.filter { $0.country != "FR" }
                #expect(others.allSatisfy { $0.state == "up" && $0.nodesDown == 0 }, "\(others)")

                // France comes back at the same addresses: its stale shards are garbage now.
                try await running.cluster.start(try running.cluster.names(.country("FR")))
                try await awaitCondition("France's nodes are up again", seconds: 60) {
                    try await de.adminStatus().nodes.filter(\.up).count == 12
                }
                let manifests = try await stored.manifests(de, session)
                try await awaitCondition("the collector leaves only referenced shards", seconds: 90) {
                    let (held, referenced) = try await storedAndReferenced(de, manifests)
                    return held == referenced
                }
                #expect(try await de.adminCollectorStatus().shardsDeleted > 0)
                try await awaitCondition("France is up again", seconds: 30) {
                    try await de.adminCountries().countries.first { $0.country == "FR" }?.state == "up"
                }
                try await stored.verify(try running.client(via: "FR"), session, folder: folder)
            }
        }

        @Test func aCoordinatorKilledMidUploadLeavesNothingVisibleAndItsShardsAreCollected() async throws {
            try await withHealingCluster("heal-upload", gcGraceSeconds: 10, via: "CH", user: "erin") { running, ch, session, folder in
                var stored = StoredFiles()
                try await stored.upload(ch, session, folder: folder, sizes: [3 << 20], seed: 11, prefix: "kept")
                let big = SeededGenerator(seed: 12).bytesOnce(96 << 20)
                try Data(big).write(to: URL(fileURLWithPath: folder + "/big"))
                let fr = try running.client(via: "FR")
                let upload = Task { try await fr.upload(folder + "/big", to: "/big", session) }
                let baseline = try await ch.adminStatus().nodes.reduce(0) { $0 + $1.usedBytes }
                try await awaitCondition("the upload has put shards on nodes", seconds: 60) {
                    try await ch.adminStatus().nodes.reduce(0) { $0 + $1.usedBytes } > baseline + (8 << 20)
                }
                try running.cluster.kill9("coordinator FR")
                await #expect(throws: (any Error).self) { _ = try await upload.value }
                #expect(try await ch.list("/", session).map(\.name).sorted() == ["kept-0"], "nothing unacknowledged is visible")
                let manifests = try await stored.manifests(ch, session)
                try await awaitCondition("the dead upload's shards are collected", seconds: 90) {
                    let (held, referenced) = try await storedAndReferenced(ch, manifests)
                    return held == referenced
                }
                #expect(try await ch.adminCollectorStatus().shardsDeleted > 0)
                try await stored.verify(ch, session, folder: folder)
            }
        }

        @Test func bytesFlippedOnDiskAreCaughtByReadsAndScrubAndRebuilt() async throws {
            try await withHealingCluster("heal-rot", via: "NZ", user: "frank") { running, nz, session, folder in
                var stored = StoredFiles()
                try await stored.upload(nz, session, folder: folder, sizes: [5 << 20], seed: 13, prefix: "rot")
                let manifest = try #require(try await stored.manifests(nz, session).first)
                let segment = manifest.segments[0]
                // A data shard (every read asks for it) and a parity shard (no read needs it):
                // one byte flipped in each body file, on disk, behind Coffre's back.
                let read = segment.shards[1]
                let parity = segment.shards[7]
                for location in [read, parity] {
                    let key = Hex.encode(ObjectManifest.shardKey(object: manifest.id, segment: 0, shard: location.index))
                    let bodies = running.cluster.folder + "/data/\(location.node)/bodies"
                    let file = try #require(FileManager.default.subpaths(atPath: bodies)?.first { $0.hasSuffix("/" + key) })
                    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: bodies + "/" + file))
                    try handle.seek(toOffset: 1000)
                    let byte = try #require(try handle.read(upToCount: 1)).first!
                    try handle.seek(toOffset: 1000)
                    try handle.write(contentsOf: [byte ^ 0x40])
                    try handle.close()
                }
                // Reads stay right (parity stands in) and report the data shard.
                try await stored.verify(try running.client(via: "DE"), session, folder: folder)
                // The scrub of the parity shard's node finds the other.
                let report = try await nz.adminScrub(node: parity.node.value, wait: true)
                #expect(report.corrupt.count >= 1, "\(report)")
                if report.suspectsRecorded == 0 {
                    // The background schedule got there first and repair already moved it.
                    #expect(try await stored.manifests(nz, session)[0].segments[0].shards[7].node != parity.node, "\(report)")
                }
                try await awaitCondition("both damaged shards are rebuilt elsewhere", seconds: 60) {
                    let now = try await stored.manifests(nz, session)[0].segments[0]
                    return now.shards[1].node != read.node && now.shards[7].node != parity.node
                }
                try await stored.verify(try running.client(via: "CH"), session, folder: folder)
            }
        }
    }
}

extension RealClusters {
    /// Leadership under real faults: the leader killed, or frozen and thawed, in the middle of a
    /// repair slowed down on purpose (200 kB/s of rebuilt shards).
    @Suite(.serialized, .timeLimit(.minutes(6))) struct LeaderFailoverTests {
        /// Uploads, slows repair, kills a node, and waits until repair is under way; returns the
        /// files, the victim and the leader's status then.
        func repairUnderWay(_ running: RunningCluster, _ folder: String, user: String) async throws -> (StoredFiles, Session, String, RepairStatus) {
            let client = try running.client(via: "NZ")
            let session = try await newAccount(client, user)
            var stored = StoredFiles()
            // Enough segments (26 of 2 MiB) that the lost node's share takes several rounds of
            // eight: the leader is stopped with work left.
            try await stored.upload(client, session, folder: folder, sizes: [48 << 20, 4 << 20], seed: 17, prefix: "big")
            try await client.adminSetRepairBudget(bytesPerSecond: 200_000)
            let victim = try await stored.manifests(client, session)[0].segments[0].shards[0].node.value
            try running.cluster.kill9("node \(victim)")
            var status = try await client.adminRepairStatus()
            try await awaitCondition("repair is under way", seconds: 60) {
                status = try await client.adminRepairStatus()
                return status.segmentsRepaired >= 1 && status.queuedSegments >= 1
            }
            return (stored, session, victim, status)
        }

        func country(of coordinator: String) -> String { String(coordinator.suffix(2)).uppercased() }

        @Test func anotherCoordinatorFinishesTheQueueWhenTheLeaderIsKilled() async throws {
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder, topology: healingTopology("leader-kill"))
                await running.run { running in
                    let (stored, session, victim, before) = try await repairUnderWay(running, folder, user: "gina")
                    let old = try #require(before.leader)
                    try running.cluster.kill9("coordinator \(country(of: old))")
                    let other = try running.client(via: ["FR", "DE", "CH", "NZ"].first { $0 != country(of: old) }!)
                    try await other.adminSetRepairBudget(bytesPerSecond: 500_000_000)
                    let up = Set(try await other.adminStatus().nodes.filter { $0.id != victim }.map(\.id))
                    try await awaitCondition("a new leader finishes the repair", seconds: 90) {
                        fullyRedundant(try await stored.manifests(other, session), up: up, gone: [victim])
                    }
                    let after = try await other.adminRepairStatus()
                    #expect(after.leader != nil && after.leader != old && after.epoch > before.epoch, "\(after)")
                    try await stored.verify(other, session, folder: folder)
                }
            }
        }

        @Test func aFrozenLeaderThawedAppliesNoStaleDecision() async throws {
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder, topology: healingTopology("leader-freeze"))
                await running.run { running in
                    let (stored, session, victim, before) = try await repairUnderWay(running, folder, user: "hugo")
                    let old = try #require(before.leader)
                    let frozen = "coordinator \(country(of: old))"
                    try running.cluster.signal(frozen, SIGSTOP)
                    let other = try running.client(via: ["FR", "DE", "CH", "NZ"].first { $0 != country(of: old) }!)
                    try await awaitCondition("another coordinator leads", seconds: 30) {
                        let status = try await other.adminRepairStatus()
                        return status.leader != old && status.epoch > before.epoch
                    }
                    try await other.adminSetRepairBudget(bytesPerSecond: 500_000_000)
                    let up = Set(try await other.adminStatus().nodes.filter { $0.id != victim }.map(\.id))
                    try await awaitCondition("the new leader finishes the repair", seconds: 90) {
                        fullyRedundant(try await stored.manifests(other, session), up: up, gone: [victim])
                    }
                    let settled = try await stored.manifests(other, session)
                    try running.cluster.signal(frozen, SIGCONT)
                    let log = running.cluster.folder + "/logs/" + frozen.replacingOccurrences(of: " ", with: "-") + ".log"
                    try await awaitCondition("the thawed leader sees it lost the lead", seconds: 30) {
                        (try? String(contentsOfFile: log, encoding: .utf8))?.contains("no longer leading") ?? false
                    }
                    // Whatever it had in hand was refused or found done: nothing moved.
                    try await Task.sleep(for: .seconds(2))
                    #expect(try await stored.manifests(other, session) == settled)
                    let now = try await other.adminRepairStatus()
                    #expect(now.leader != old && now.epoch > before.epoch, "epochs only grow: \(now)")
                    try await stored.verify(other, session, folder: folder)
                }
            }
        }
    }
}

extension RealClusters {
    /// Membership in the metadata store: a node joins by being started with its certificate.
    /// Draining a node of a real cluster while files are uploaded and read; a rebalance onto
    /// nodes that joined later.
    @Suite(.serialized, .timeLimit(.minutes(5))) struct DrainClusterTests {
        @Test func aStartedRebalanceSpreadsDataOntoNodesThatJoinedLater() async throws {
            try await withHealingCluster("rebalance", gcGraceSeconds: 10, capacityBytes: 96 << 20, via: "CH", user: "ivan") { running, ch, session, folder in
                var stored = StoredFiles()
                // 16 MiB of files: 24 MiB of shards, about 2 % of each node's 96 MiB.
                try await stored.upload(ch, session, folder: folder, sizes: [6 << 20, 6 << 20, 4 << 20], seed: 61, prefix: "before")
                // What-if first: adding Japan's three empty nodes would spread shards onto them.
                let grow = try await ch.adminRebalancePlan(spread: 0.01, addCountry: ("JP", 3, nil))
                #expect(grow.added == ["jp-new-1", "jp-new-2", "jp-new-3"] && (grow.movesByReason["skew"] ?? 0) > 0, "\(grow)")
                #expect(grow.firstMoves.contains { $0.to.hasPrefix("jp-new-") } && grow.policyCanBeMet, "\(grow.firstMoves)")
                for n in 1...3 { try await running.cluster.addNode(id: "jp-\(n)", country: "JP", region: "jp-tokyo", capacityBytes: 96 << 20) }
                try await awaitCondition("the new nodes are up", seconds: 30) {
                    try await ch.adminStatus().nodes.filter { $0.id.hasPrefix("jp-") && $0.up }.count == 3
                }
                let plan = try await ch.adminRebalancePlan(spread: 0.01)
                #expect((plan.movesByReason["skew"] ?? 0) > 0, "\(plan)")
                _ = try await ch.adminRebalanceStart(spread: 0.01)
                await #expect(throws: (any Error).self, "one rebalance at a time") { _ = try await ch.adminRebalanceStart() }
                try await awaitCondition("the rebalance ends", seconds: 120) { try await ch.adminRebalanceStatus().lastJobFinishedAt != nil }
                let status = try await ch.adminRebalanceStatus()
                #expect(status.movesDone > 0 && status.job == nil, "\(status)")
                let placed = try await stored.manifests(ch, session).flatMap { $0.segments.flatMap { $0.shards.map(\.node.value) } }
                #expect(placed.contains { $0.hasPrefix("jp-") }, "the new nodes hold shards")
                try await stored.verify(try running.client(via: "NZ"), session, folder: folder)
            }
        }

        /// A rebalance cancelled midway stops with every shard placed and nothing orphaned; another,
        /// whose leader is killed with SIGKILL midway, is resumed by the next leader and finishes;
        /// afterwards the nodes hold exactly what the manifests reference.
        @Test func aCancelledRebalanceAndOneWhoseLeaderIsKilledLoseAndOrphanNothing() async throws {
            try await withHealingCluster("rebalance-faults", gcGraceSeconds: 5, capacityBytes: 12 << 20, via: "CH", user: "jan") { running, ch, session, folder in
                var stored = StoredFiles()
                // Twenty one-segment objects, 2.5 MB of shards a node of 12 MiB: the three new
                // nodes need some 40 moves to come within 1 % of the others.
                try await stored.upload(ch, session, folder: folder, sizes: Array(repeating: 1_000_000, count: 20), seed: 71, prefix: "r")
                for n in 1...3 { try await running.cluster.addNode(id: "jp-\(n)", country: "JP", region: "jp-tokyo", capacityBytes: 12 << 20) }
                try await awaitCondition("the new nodes are up", seconds: 30) {
                    try await ch.adminStatus().nodes.filter { $0.id.hasPrefix("jp-") && $0.up }.count == 3
                }
                let nodes = Set(try await ch.adminStatus().nodes.map(\.id))
                // Every shard on a known node, and nothing stored that no manifest references
                // (once the collector's grace is over).
                func wholeAndTidy(_ client: CoffreClient) async throws {
                    let manifests = try await stored.manifests(client, session)
                    for manifest in manifests {
                        for segment in manifest.segments {
                            #expect(segment.shards.count == 9 && Set(segment.shards.map(\.node.value)).isSubset(of: nodes), "\(manifest.id)")
                        }
                    }
                    try await awaitCondition("the nodes hold just what the manifests reference", seconds: 60) {
                        let (held, referenced) = try await storedAndReferenced(client, try await stored.manifests(client, session))
                        return held == referenced
                    }
                    try await stored.verify(client, session, folder: folder)
                }

                // 1. Slowly (100 kB/s: the pass takes about a minute), then cancelled while its
                // copies land.
                try await ch.adminSetRepairBudget(bytesPerSecond: 100_000)
                let planned = try await ch.adminRebalancePlan(spread: 0.01)
                print("rebalance plan: \(planned.moves) moves, \(planned.bytes) bytes")
                #expect(planned.moves >= 20, "\(planned)")
                // Moves land on the new nodes while the pass (of every object) runs: the
                // leader publishes its counters when a step ends, the nodes their usage at once.
                func onNewNodes() async throws -> Int64 {
                    try await ch.adminStatus().nodes.filter { $0.id.hasPrefix("jp-") }.reduce(0) { $0 + $1.usedBytes }
                }
                _ = try await ch.adminRebalanceStart(spread: 0.01)
                try await awaitCondition("the first rebalance's copies reach the new nodes", seconds: 60) { try await onNewNodes() > 0 }
                _ = try await ch.adminRebalanceCancel()
                try await awaitCondition("the job is gone", seconds: 60) { try await ch.adminRebalanceStatus().job == nil }
                let left = try await ch.adminRebalancePlan(spread: 0.01)
                #expect(left.moves > 0 && left.moves < planned.moves, "the cancelled job stopped midway: \(left.moves) of \(planned.moves) moves left")
                try await wholeAndTidy(ch)

                // 2. Started again, and its leader killed with SIGKILL while its copies land.
                let landed = try await onNewNodes()
                _ = try await ch.adminRebalanceStart(spread: 0.01)
                try await awaitCondition("the second rebalance's copies reach the new nodes", seconds: 60) { try await onNewNodes() > landed }
                let before = try await ch.adminRebalanceStatus()
                let leader = try #require(before.leader)
                let leaderCountry = String(leader.suffix(2)).uppercased()
                try running.cluster.kill9("coordinator \(leaderCountry)")
                let other = try running.client(via: ["NZ", "DE", "FR", "CH"].first { $0 != leaderCountry }!)
                try await awaitCondition("another coordinator leads the job", seconds: 60) {
                    let status = try await other.adminRebalanceStatus()
                    return status.leader != nil && status.leader != leader && status.epoch > before.epoch
                }
                try await other.adminSetRepairBudget(bytesPerSecond: 500_000_000)
                try await awaitCondition("the resumed rebalance ends", seconds: 120) {
                    let status = try await other.adminRebalanceStatus()
                    return status.job == nil && status.lastJobFinishedAt != nil && status.leader != leader
                }
                let resumed = try await other.adminRebalanceStatus()
                #expect(resumed.movesDone >= 1, "the new leader moved the rest: \(resumed)")
                try await running.cluster.start(["coordinator \(leaderCountry)"])
                try await wholeAndTidy(other)
            }
        }

        @Test func aDrainedNodeEndsEmptyUnderLoadAndEveryFileReadsBack() async throws {
            try await withHealingCluster("drain", gcGraceSeconds: 10, via: "DE", user: "hana") { running, de, session, folder in
                var stored = StoredFiles()
                try await stored.upload(de, session, folder: folder, sizes: [5 << 20, 3 << 20, 400_000, 1], seed: 51, prefix: "before")
                let victim = try #require(try await stored.manifests(de, session).first?.segments.first?.shards.first?.node.value)
                // What-if first: it changes nothing.
                let placed = try await stored.manifests(de, session)
                let onVictim = placed.reduce(0) { $0 + $1.segments.reduce(0) { $0 + $1.shards.filter { $0.node.value == victim }.count } }
                let whatIf = try await de.adminRebalancePlan(drain: [victim])
                #expect(whatIf.movesByReason["drain"] == onVictim && whatIf.draining == [victim] && whatIf.complete, "\(whatIf)")
                #expect(whatIf.policyCanBeMet && whatIf.lowestHealthyDuringMoves == 9 && whatIf.estimatedSeconds != nil)
                #expect(try await de.adminRebalancePlan(removeCountries: ["FR"]).policyCanBeMet)
                #expect(try await de.adminRebalancePlan(removeCountries: ["FR", "NZ"]).policyCanBeMet == false, "two countries of three nodes cannot hold nine shards three per country")
                #expect(try await stored.manifests(de, session) == placed)
                // A drill's pre-flight check: France's loss keeps k; at margin 1 the segments with
                // three shards in France would fall under it.
                let france = try await de.adminDrillPreflight(countries: ["FR"], margin: 0)
                #expect(france.allowed && (france.lowestHealthy ?? 0) >= 6 && france.fault.count == 3, "\(france)")
                let threeInFrance = placed.flatMap(\.segments).filter { $0.shards.filter { $0.node.value.hasPrefix("fr-") }.count == 3 }.count
                let strict = try await de.adminDrillPreflight(countries: ["FR"], margin: 1)
                #expect(strict.atRiskCount == threeInFrance && strict.allowed == (threeInFrance == 0), "\(strict)")
                let drain = try await de.adminDrain(node: victim, drain: true)
                #expect(drain.objectsLeft > 0)
                // Load during the drain: uploads through another region, reads through a third.
                try await stored.upload(try running.client(via: "NZ"), session, folder: folder, sizes: [2 << 20, 700_000], seed: 52, prefix: "during")
                try await stored.verify(try running.client(via: "CH"), session, folder: folder)
                try await awaitCondition("the drained node holds no referenced shard", seconds: 90) {
                    try await de.adminRebalanceStatus().draining.first { $0.node == victim }?.objectsLeft == 0
                }
                let manifests = try await stored.manifests(de, session)
                #expect(manifests.allSatisfy { $0.segments.allSatisfy { !$0.shards.contains { $0.node.value == victim } } })
                #expect(manifests.allSatisfy { $0.segments.allSatisfy { segment in
                    Dictionary(grouping: segment.shards, by: { $0.node.value.prefix(2) }).values.allSatisfy { $0.count <= 3 } && Set(segment.shards.map(\.node)).count == 9
                } }, "the policy holds")
                let status = try await de.adminRebalanceStatus()
                #expect(status.movesDone > 0 && status.bytesMoved > 0, "\(status)")
                try await stored.verify(try running.client(via: "FR"), session, folder: folder)
                // The copies left on it are garbage: the collector empties it.
                try await awaitCondition("the drained node is empty", seconds: 90) {
                    try await de.adminStatus().nodes.first { $0.id == victim }?.usedBytes == 0
                }
                // Empty and drained: it leaves the cluster, on every coordinator, and cannot come back
                // under its id. A node that holds shards cannot be removed.
                let busy = try #require(manifests.first?.segments.first?.shards.first?.node.value)
                do {
                    _ = try await de.adminRemoveNode(busy)
                    Issue.record("\(busy) holds shards and was removed")
                } catch let error as ClientError {
                    #expect(error.code == .conflict, "\(error)")
                }
                let removal = try await de.adminRemoveNode(victim)
                #expect(removal.node == victim)
                for country in ["FR", "DE", "CH", "NZ"] {
                    let client = try running.client(via: country)
                    try await awaitCondition("coordinator \(country) forgets \(victim)", seconds: 30) {
                        try await !client.adminStatus().nodes.contains { $0.id == victim }
                    }
                }
                try await stored.upload(de, session, folder: folder, sizes: [1 << 20], seed: 53, prefix: "after")
                #expect(try await stored.manifests(de, session).allSatisfy { $0.segments.allSatisfy { !$0.shards.contains { $0.node.value == victim } } })
                try await stored.verify(try running.client(via: "NZ"), session, folder: folder)
            }
        }
    }
}

extension RealClusters {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct MembershipTests {
        @Test func aNewNodeJoinsByAnnouncingItselfAndCannotPassForAnother() async throws {
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder, topology: healingTopology("members"))
                await running.run { running in
                    try await running.cluster.addNode(id: "fr-4", country: "FR", region: "fr-lyon", capacityBytes: 8 << 30)
                    for country in ["FR", "DE", "CH", "NZ"] {
                        let client = try running.client(via: country)
                        try await awaitCondition("coordinator \(country) sees fr-4 up", seconds: 30) {
                            try await client.adminStatus().nodes.contains { $0.id == "fr-4" && $0.up && $0.region == "fr-lyon" }
                        }
                    }
                    // New data goes there too (the emptiest node is the likeliest choice).
                    let client = try running.client(via: "DE")
                    let session = try await newAccount(client, "iris")
                    var stored = StoredFiles()
                    try await stored.upload(client, session, folder: folder, sizes: [8 << 20, 8 << 20], seed: 19, prefix: "new")
                    let placed = try await stored.manifests(client, session).flatMap { $0.segments.flatMap { $0.shards.map(\.node.value) } }
                    #expect(placed.contains("fr-4"))
                    try await stored.verify(client, session, folder: folder)

                    // A node's certificate names it: another identity is refused, and no record moves.
                    let authority = try CertificateAuthority.load(from: running.cluster.folder + "/certs")
                    try authority.issue(commonName: "stray", hosts: ["127.0.0.1"], identity: .init(role: .node, id: "zz-9")).write(to: folder, name: "stray")
                    var configuration = HTTPClient.Configuration(tlsConfiguration: try TLSSetup.client(
                        ca: running.cluster.folder + "/certs/ca.pem", certificate: folder + "/stray.pem", key: folder + "/stray-key.pem"))
                    configuration.httpVersion = .http1Only
                    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
                    let listener = try #require(try running.cluster.clusterListeners().first)
                    var request = HTTPClientRequest(url: listener + "/v1/cluster/announce")
                    request.method = .POST
                    request.body = .bytes(ByteBuffer(bytes: Array(#"{"node":"de-1","country":"DE","region":"x","url":"https://127.0.0.1:1"}"#.utf8)))
                    let response = try await http.execute(request, timeout: .seconds(10))
                    let answer = try await response.body.collect(upTo: 1 << 16)
                    try await http.shutdown()
                    #expect(response.status.code == 403, "\(String(buffer: answer))")
                    #expect(try await client.adminStatus().nodes.first { $0.id == "de-1" }?.url.hasSuffix(":1") == false)
                }
            }
        }
    }
}
