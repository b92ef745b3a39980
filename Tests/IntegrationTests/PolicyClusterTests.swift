import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation
import LocalCluster
import Synchronization
import Testing
import TestSupport

extension RealClusters {
    /// An online erasure-scheme change on a real cluster (3 etcd members, 4 coordinators, 12 nodes
    /// in 4 countries): RS(6,3) to RS(8,4) while files are read back without pause.
    @Suite(.serialized, .timeLimit(.minutes(6))) struct PolicyClusterTests {
        @Test func aChangeFromRS63ToRS84ReencodesEverySegmentWhileReadsGoOn() async throws {
            try await withHealingCluster("policy", gcGraceSeconds: 10, via: "CH", user: "lena") { running, ch, session, folder in
                var stored = StoredFiles()
                try await stored.upload(ch, session, folder: folder, sizes: [5 << 20, 2 << 20, 300_000, 1], seed: 81, prefix: "before")

                let segments = try await stored.manifests(ch, session).reduce(0) { $0 + $1.segments.count }
                let plan = try await ch.adminPolicyPlan(k: 8, m: 4)
                #expect(plan.current == "RS(6,3)" && plan.target == "RS(8,4)" && plan.policyCanBeMet, "\(plan)")
                #expect(plan.segmentsToReencode == segments && plan.bytesToWrite > 0 && plan.storedBytesAfter < plan.storedBytesNow * 2, "\(plan)")
                do {
                    _ = try await ch.adminSetPolicy(k: 9, m: 4)
                    Issue.record("RS(9,4) was accepted on 12 nodes")
                } catch let error as ClientError {
                    #expect(error.code == .insufficientNodes, "\(error)")
                }

                // Reads go on through another coordinator during the whole change.
                let reads = ReadTally()
                let reader = try running.client(via: "DE")
                let files = stored.files
                async let reading: Void = {
                    var round = 0
                    while !reads.stopped {
                        for (path, bytes) in files {
                            let local = folder + "/read-\(round)"
                            do {
                                try await reader.download(path, to: local, session)
                                let same = Array(try Data(contentsOf: URL(fileURLWithPath: local))) == bytes
                                reads.record(same ? nil : "\(path): differs")
                            } catch {
                                reads.record("\(path): \(error)")
                            }
                            round += 1
                        }
                    }
                }()

                do {
                    let job = try await ch.adminSetPolicy(k: 8, m: 4)
                    #expect(job.k == 8 && job.m == 4)
                    try await awaitCondition("every segment is RS(8,4)", seconds: 180) {
                        let status = try await ch.adminPolicy()
                        return status.job == nil && status.segmentsByScheme == ["RS(8,4)": segments]
                    }
                } catch {
                    reads.stop()
                    await reading
                    throw error
                }
                reads.stop()
                await reading
                let (done, failed) = reads.state.withLock { ($0.done, $0.failed) }
                #expect(failed.isEmpty && done > 0, "\(done) reads, failed: \(failed)")
                let status = try await ch.adminPolicy()
                #expect(status.policy == "RS(8,4)", "\(status)")

                for manifest in try await stored.manifests(ch, session) {
                    #expect(manifest.policy == (try ErasurePolicy(dataShards: 8, parityShards: 4)))
                    for segment in manifest.segments {
                        #expect(Set(segment.shards.map(\.node)).count == 12, "\(manifest.id)/\(segment.index) on 12 distinct nodes")
                    }
                }
                // New uploads, through any coordinator, are RS(8,4).
                try await stored.upload(try running.client(via: "NZ"), session, folder: folder, sizes: [400_000], seed: 82, prefix: "after")
                #expect(try await stored.manifests(ch, session).allSatisfy { $0.policy.dataShards == 8 })
                try await stored.verify(try running.client(via: "FR"), session, folder: folder)
            }
        }
    }
}

/// Reads done and failed by a reader running beside a test, and its stop signal.
final class ReadTally: Sendable {
    let state = Mutex((done: 0, failed: [String](), stopped: false))
    var stopped: Bool { state.withLock { $0.stopped } }
    func stop() { state.withLock { $0.stopped = true } }
    func record(_ failure: String?) {
        state.withLock { state in
            state.done += 1
            if let failure { state.failed.append(failure) }
        }
    }
}
