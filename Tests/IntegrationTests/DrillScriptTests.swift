import CoffreAPI
import CoffreClient
import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// The operators' drill scripts (`Cluster/drills/`), run as an operator runs them — the `coffre`
    /// CLI against a real cluster, with its load generator — each must exit 0: its drill ended with
    /// full redundancy and every file the load stored read back bit-exact.
    @Suite(.serialized, .timeLimit(.minutes(8))) struct DrillScriptTests {
        /// Every script in `Cluster/drills/`, with what it needs in this small cluster.
        static let scripts: [(String, [String: String])] = [
            ("country-stop", [:]), ("country-blackhole", ["COUNTRY": "DE"]), ("country-slow", ["COUNTRY": "CH", "LATENCY": "150", "LOSS": "5"]),
            ("node-stop", ["NODE": "de-1"]), ("coordinator-stop", ["COORDINATOR": "FR"]), ("node-kill", ["NODE": "fr-1"]),
            ("country-kill", ["COUNTRY": "FR"]), ("coordinator-kill", ["COORDINATOR": "DE"]), ("coordinator-kill-mid-upload", ["COORDINATOR": "FR"]),
            ("leader-kill-mid-repair", ["NODE": "de-2", "REPAIR_SLOW": "200kB/s"]), ("flip-bytes", ["NODE": "ch-1"]), ("disk-full", ["NODE": "nz-2"]),
        ]

        @Test func everyDrillScriptRunsHere() throws {
            let here = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/Cluster/drills").filter { !$0.hasSuffix(".sh") && $0 != "drill" }
            #expect(Set(here) == Set(Self.scripts.map(\.0)), "Cluster/drills/ and this suite's list differ")
        }

        @Test(arguments: scripts)
        func aDrillScriptPassesOnALocalCluster(script: String, environment: [String: String]) async throws {
            // COFFRE_DRILL_SCRIPTS=a,b runs only those, by hand (CI sets nothing: all run).
            if let only = ProcessInfo.processInfo.environment["COFFRE_DRILL_SCRIPTS"], !only.split(separator: ",").contains(Substring(script)) { return }
            try await withHealingCluster("script-\(script)", via: "NZ", user: "max") { running, _, _, folder in
                let binaries = (builtExecutable("coffre") as NSString).deletingLastPathComponent
                let result = try await runProcessInBackground(
                    repositoryRoot + "/Cluster/drills/" + script, ["--cluster", running.cluster.folder, "--ttl", "8s", "--load", "20s"],
                    environment: environment.merging(["COFFRE_BIN": binaries, "COFFRE_HOME": folder + "/home"]) { a, _ in a })
                print("[\(script)]\n" + result.output)
                #expect(result.status == 0, "\(script) exited \(result.status)")
                #expect(result.output.contains("phase: ended (recovered)") && result.output.contains("verification: all"))
            }
        }
    }
}
