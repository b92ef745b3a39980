import AsyncHTTPClient
import ClusterTLS
import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation
import LocalCluster
import NIOCore
import NodeClient

/// `coffre-bench repair` (issue 7): a local 4-country cluster with `sizeMiB` stored, one node
/// killed with SIGKILL, then the rebuild rate and the time to full redundancy.
///
/// Baseline, in the same run: the same k shards per affected segment read from the surviving
/// nodes (same segments, one after another, k fetches in parallel each, as repair does),
/// with nothing rebuilt or written: the ceiling of a repair that reads what it must.
struct RepairBenchmark {
    let sizeMiB: Int
    let budgetBytesPerSecond: Int64
    let keep: Bool

    func run() async throws {
        let binaries = (CommandLine.arguments[0] as NSString).deletingLastPathComponent
        let run = NSTemporaryDirectory() + "coffre-bench-repair-\(getpid())"
        let downAfter = 3
        let repairAfter = 2
        let topology = ClusterTopologyFile(
            name: "bench-repair",
            countries: ["FR", "DE", "CH", "NZ"].map { .init(code: $0, region: $0.lowercased() + "-1", nodes: 3, capacityBytes: 64 << 30) },
            etcdCountries: ["FR", "DE", "CH"], policy: .init(k: 6, m: 3, margin: 0), segmentSizeBytes: 16 << 20,
            quotaBytesDefault: 1 << 40, basePort: Int.random(in: 25_000..<32_000), downAfterSeconds: downAfter,
            repairAfterSeconds: repairAfter, repairBudgetBytesPerSecond: budgetBytesPerSecond, leaderLeaseSeconds: 3, gcGraceSeconds: 3600)
        let cluster = LocalCluster(topology: topology, runDirectory: run, binaries: binaries)
        let profile = try await cluster.up(saveProfile: false)
        defer {
            _ = try? cluster.down()
            if !keep { try? FileManager.default.removeItem(atPath: run) }
        }
        let client = try CoffreClient(profile: profile, via: "NZ")
        _ = try await client.register(username: "bench", password: "bench password", parameters: .minimum)
        let session = try await client.login(username: "bench", password: "bench password")
        let files = max(1, sizeMiB / 256)
        let payload = run + "/payload.bin"
        try ClusterBenchmarks(sizeMiB: 0, smallCount: 0, keep: false).writeRandomFile(payload, size: (sizeMiB / files) << 20)
        var manifests: [ObjectManifest] = []
        for i in 0..<files {
            let entry = try await client.upload(payload, to: "/payload-\(i)", session)
            manifests.append(try await client.adminObject(entry.objectId!))
        }
        // The node holding the most shards goes.
        var perNode: [NodeID: Int64] = [:]
        for manifest in manifests {
            for segment in manifest.segments { for shard in segment.shards { perNode[shard.node, default: 0] += Int64(segment.shardLength) } }
        }
        let (victim, lostBytes) = perNode.max { $0.value < $1.value }!
        let status = try await client.adminStatus()
        let nodes = Dictionary(uniqueKeysWithValues: status.nodes.map { ($0.id, $0.url) })

        // Baseline: the reads repair must do, with nothing rebuilt.
        // Nodes serve coordinators only: read as one does, with a coordinator's certificate.
        let coordinator = "coordinator-" + cluster.topology.countries[0].code.lowercased()
        let reader = StorageNodeClient(tls: try TLSSetup.client(
            ca: cluster.folder + "/certs/ca.pem", certificate: cluster.folder + "/certs/\(coordinator).pem",
            key: cluster.folder + "/certs/\(coordinator)-key.pem"))
        let baselineSeconds = try await timed("repair.baseline") {
            for manifest in manifests {
                for segment in manifest.segments where segment.shards.contains(where: { $0.node == victim }) {
                    let sources = segment.shards.filter { $0.node != victim }.prefix(manifest.policy.dataShards)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for source in sources {
                            group.addTask {
                                _ = try await reader.get(
                                    base: nodes[source.node.value]!, key: ObjectManifest.shardKey(object: manifest.id, segment: segment.index, shard: source.index))
                            }
                        }
                        try await group.waitForAll()
                    }
                }
            }
        }
        try await reader.shutdown()

        // The real thing: kill it, and wait for every segment to have k + m shards elsewhere.
        try cluster.kill9("node \(victim)")
        let killed = now()
        var started: Double?
        while true {
            let repair = try await client.adminRepairStatus()
            if started == nil, repair.segmentsRepaired > 0 || repair.queuedSegments > 0 { started = now() }
            var done = true
            for manifest in manifests where done {
                done = !(try await client.adminObject(manifest.id)).segments.contains { $0.shards.contains { $0.node == victim } }
            }
            if done { break }
            guard now() - killed < 3600 else { throw LocalClusterError("repair did not finish in an hour") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let full = now() - killed
        let rebuilding = now() - (started ?? killed)
        report("repair.rebuild", unit: "MB/s", value: Double(lostBytes) / rebuilding / 1e6, baseline: Double(lostBytes) / baselineSeconds / 1e6)
        let aim = Double(downAfter + repairAfter) + 1.2 * Double(lostBytes) / Double(budgetBytesPerSecond)
        report("repair.time_to_full_redundancy", unit: "s", value: full, baseline: aim)
        FileHandle.standardError.write(Data("node \(victim) held \(ByteCount(lostBytes)) of \(sizeMiB) MiB stored; full redundancy \(String(format: "%.1f", full)) s after the kill (aim ≤ \(String(format: "%.1f", aim)) s)\n".utf8))
        try await client.shutdown()
    }
}
