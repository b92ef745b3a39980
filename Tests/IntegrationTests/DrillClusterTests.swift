import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// Failover drills on a real cluster (3 etcd members, 4 coordinators, 12 nodes in 4
    /// countries, RS(6,3); down after 3 s, lost after 2 s more) under a load generator: the fault
    /// comes from the nodes' own fault gate, the report from the leader and the load.
    @Suite(.serialized, .timeLimit(.minutes(6))) struct DrillClusterTests {
        @Test func aCountryDrillUnderLoadIsDetectedRepairedLiftedAndReported() async throws {
            try await withHealingCluster("drill", via: "NZ", user: "jules") { running, nz, session, folder in
                var stored = StoredFiles()
                try await stored.upload(nz, session, folder: folder, sizes: [3 << 20, 700_000, 1], seed: 71, prefix: "before")

                // Refused by the pre-flight: at margin 3, France's three shards of a segment are too many.
                do {
                    _ = try await nz.adminDrillStart(DrillStartRequest(countries: ["FR"], ttlSeconds: 10, margin: 3))
                    Issue.record("a drill under k + margin was accepted")
                } catch let error as ClientError {
                    #expect(error.code == .drillRefused, "\(error)")
                }
                // Refused: no coordinator would be left to lead the drill.
                do {
                    _ = try await nz.adminDrillStart(DrillStartRequest(coordinators: ["FR", "DE", "CH", "NZ"], ttlSeconds: 10))
                    Issue.record("a drill of every coordinator was accepted")
                } catch let error as ClientError {
                    #expect(error.code == .drillRefused, "\(error)")
                }

                // Load through New Zealand while France's nodes refuse service for 12 s.
                let generator = LoadGenerator(duration: .seconds(30), fileBytes: 200_000, workers: 2, folder: "/load", scratch: folder + "/load")
                let loadClient = try running.client(via: "NZ")
                async let load = generator.run(loadClient, session)
                try await Task.sleep(for: .seconds(5))
                let started = try await nz.adminDrillStart(DrillStartRequest(countries: ["FR"], mode: .stop, ttlSeconds: 12))
                #expect(started.nodes == ["fr-1", "fr-2", "fr-3"] && started.phase == .faulted)
                await #expect(throws: (any Error).self, "one drill at a time") {
                    _ = try await nz.adminDrillStart(DrillStartRequest(nodes: ["de-1"], ttlSeconds: 10))
                }
                let record = try await load
                try await awaitCondition("the drill ends", seconds: 180) { try await nz.adminDrill().phase == .ended }
                let drill = try await nz.adminDrill()
                let windows = LoadWindow.split(record, drill: drill)
                print("[drill] \(drill.events.map(\.what).joined(separator: " | "))")
                print("[drill] load: \(windows)")
                #expect(drill.outcome == "recovered" && drill.liftReason == "ttl", "\(drill)")
                #expect(drill.detectedAt != nil, "the cluster saw France down")
                #expect(drill.repairStartedAt != nil && drill.bytesRebuilt > 0, "a drill longer than repair_after rebuilds: \(drill)")
                #expect(drill.fullRedundancyAt != nil && drill.degradedSegments == 0)
                #expect(record.verificationFailures.isEmpty, "\(record.verificationFailures)")
                #expect(record.verified > 0 && windows[1].requests > 0, "load ran during the drill")
                try await stored.verify(try running.client(via: "DE"), session, folder: folder)

                // A coordinator drill: France's coordinator refuses clients, the others serve.
                _ = try await nz.adminDrillStart(DrillStartRequest(coordinators: ["FR"], mode: .stop, ttlSeconds: 8))
                let france = try running.client(via: "FR")
                try await awaitCondition("France's coordinator refuses clients", seconds: 30) {
                    do {
                        _ = try await france.whoami(session)
                        return false
                    } catch let error as ClientError {
                        return error.code == .unavailable
                    }
                }
                #expect(try await nz.whoami(session).username == "jules")
                try await awaitCondition("the coordinator drill ends", seconds: 120) { try await nz.adminDrill().phase == .ended }
                #expect(try await france.whoami(session).username == "jules", "France's coordinator serves again")
            }
        }

        /// A blackholed node holds every request unanswered: health probes time out (and do not
        /// hold up the poll of the other nodes), reads go to other shards, writes to alternates.
        @Test func aBlackholedNodeIsSeenDownWithoutStallingTheOthers() async throws {
            try await withHealingCluster("blackhole", via: "DE", user: "kim") { running, de, session, folder in
                var stored = StoredFiles()
                try await stored.upload(de, session, folder: folder, sizes: [2 << 20, 300_000], seed: 73, prefix: "before")
                let victim = try #require(try await stored.manifests(de, session).first?.segments.first?.shards.first?.node.value)
                let generator = LoadGenerator(duration: .seconds(20), fileBytes: 150_000, workers: 2, folder: "/load", scratch: folder + "/load")
                async let load = generator.run(try running.client(via: "CH"), session)
                try await Task.sleep(for: .seconds(3))
                _ = try await de.adminDrillStart(DrillStartRequest(nodes: [victim], mode: .blackhole, ttlSeconds: 10))
                try await awaitCondition("the blackholed node is seen down", seconds: 30) {
                    try await de.adminStatus().nodes.first { $0.id == victim }?.up == false
                }
                #expect(try await de.adminStatus().nodes.filter(\.up).count == 11, "every other node stays up")
                let record = try await load
                try await awaitCondition("the drill ends", seconds: 180) { try await de.adminDrill().phase == .ended }
                let drill = try await de.adminDrill()
                print("[drill] \(drill.events.map(\.what).joined(separator: " | "))")
                print("[drill] load: \(LoadWindow.split(record, drill: drill))")
                #expect(drill.outcome == "recovered" && drill.detectedAt != nil, "\(drill)")
                #expect(record.verificationFailures.isEmpty && record.verified > 0, "\(record.verificationFailures)")
                try await stored.verify(try running.client(via: "NZ"), session, folder: folder)
            }
        }

        /// A second, real failure during a drill: a country holding three shards of some segment is
        /// drilled at margin 0 (that segment keeps 6 = k healthy shards) with repair paused, then a
        /// node holding another shard of it is killed with SIGKILL: it falls to 5, and the leader
        /// lifts the drill at once.
        @Test func aRealFailureDuringACountryDrillAbortsIt() async throws {
            try await withHealingCluster("abort", via: "CH", user: "nina") { running, ch, session, folder in
                var stored = StoredFiles()
                try await stored.upload(ch, session, folder: folder, sizes: [3 << 20, 500_000], seed: 75, prefix: "before")
                var chosen: (country: String, victim: String)?
                for segment in try await stored.manifests(ch, session).flatMap(\.segments) where chosen == nil {
                    let byCountry = Dictionary(grouping: segment.shards.map(\.node.value), by: { String($0.prefix(2)).uppercased() })
                    if let full = byCountry.first(where: { $0.value.count == 3 }), let victim = segment.shards.map(\.node.value).first(where: {
                        String($0.prefix(2)).uppercased() != full.key
                    }) {
                        chosen = (full.key, victim)
                    }
                }
                let (country, victim) = try #require(chosen, "some segment has three shards in one country")
                try await ch.adminSetRepairBudget(bytesPerSecond: 0)
                _ = try await ch.adminDrillStart(DrillStartRequest(countries: [country], mode: .stop, ttlSeconds: 300, margin: 0))
                try await awaitCondition("\(country) is seen down", seconds: 30) { try await ch.adminDrill().detectedAt != nil }
                try running.cluster.kill9("node \(victim)")
                try await awaitCondition("the drill aborts", seconds: 60) { try await ch.adminDrill().liftReason == "aborted" }
                let drill = try await ch.adminDrill()
                print("[drill] \(drill.events.map(\.what).joined(separator: " | "))")
                #expect(drill.abortReason?.contains(victim) == true, "\(drill.abortReason ?? "-")")
                #expect(drill.liftedAt! - drill.startedAt < 300_000, "long before the TTL")
                // Repair goes on: the drilled nodes answer again, the killed node's shards are
                // rebuilt elsewhere, the drill ends.
                try await ch.adminSetRepairBudget(bytesPerSecond: 500_000_000)
                try await awaitCondition("the drill ends", seconds: 180) { try await ch.adminDrill().phase == .ended }
                #expect(try await ch.adminDrill().outcome == "recovered")
                try await stored.verify(try running.client(via: "NZ"), session, folder: folder)
            }
        }
    }
}
