import CoffreAPI
import CoffreClient
import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// The operators' drill scripts (`Cluster/drills/`), run as an operator runs them — the `coffre`
    /// CLI against a real cluster, with its load generator — each must exit 0: its drill ended with
    /// full redundancy and every file the load stored read back bit-exact. The scripts run back
    /// to back on a few clusters, as an operator runs them on a long-lived one: each leaves the
    /// cluster whole for the next (and a cluster start costs as much as a drill).
    @Suite(.serialized, .timeLimit(.minutes(8))) struct DrillScriptTests {
        /// Every script in `Cluster/drills/`, with what it needs in this small cluster, in the
        /// groups that share a cluster (a stop, a kill and a disk fault in each).
        static let groups: [[(script: String, environment: [String: String])]] = [
            [("country-stop", [:]), ("node-stop", ["NODE": "de-1"]), ("coordinator-stop", ["COORDINATOR": "FR"]), ("flip-bytes", ["NODE": "ch-1"])],
            [("country-blackhole", ["COUNTRY": "DE"]), ("country-slow", ["COUNTRY": "CH", "LATENCY": "150", "LOSS": "5"]), ("node-kill", ["NODE": "fr-1"]), ("disk-full", ["NODE": "nz-2"])],
            [("country-kill", ["COUNTRY": "FR"]), ("coordinator-kill", ["COORDINATOR": "DE"]), ("coordinator-kill-mid-upload", ["COORDINATOR": "FR"]),
             ("leader-kill-mid-repair", ["NODE": "de-2", "REPAIR_SLOW": "200kB/s"])],
        ]

        @Test func everyDrillScriptRunsHere() throws {
            let here = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/Cluster/drills").filter { !$0.hasSuffix(".sh") && $0 != "drill" }
            let listed = Self.groups.flatMap { $0.map(\.script) }
            #expect(Set(here) == Set(listed) && listed.count == Set(listed).count, "Cluster/drills/ and this suite's list differ")
        }

        @Test(arguments: 0..<groups.count)
        func drillScriptsPassBackToBackOnALocalCluster(group: Int) async throws {
            // COFFRE_DRILL_SCRIPTS=a,b runs only those, by hand (CI sets nothing: all run).
            let only = ProcessInfo.processInfo.environment["COFFRE_DRILL_SCRIPTS"].map { $0.split(separator: ",").map(String.init) }
            let scripts = Self.groups[group].filter { only?.contains($0.script) ?? true }
            guard !scripts.isEmpty else { return }
            try await withHealingCluster("scripts-\(group)", via: "NZ", user: "max") { running, _, _, folder in
                let binaries = (builtExecutable("coffre") as NSString).deletingLastPathComponent
                for (script, environment) in scripts {
                    let result = try await runProcessInBackground(
                        repositoryRoot + "/Cluster/drills/" + script, ["--cluster", running.cluster.folder, "--ttl", "8s", "--load", "20s"],
                        environment: environment.merging(["COFFRE_BIN": binaries, "COFFRE_HOME": folder + "/home"]) { a, _ in a })
                    print("[\(script)]\n" + result.output)
                    #expect(result.status == 0, "\(script) exited \(result.status)")
                    #expect(result.output.contains("phase: ended (recovered)") && result.output.contains("verification: all"), "\(script)")
                }
            }
        }
    }
}
