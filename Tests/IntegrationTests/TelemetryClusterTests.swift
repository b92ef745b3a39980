import CoffreClient
import CoffreModel
import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// What an operator sees of a real local cluster: a real Prometheus scrapes every daemon's
    /// telemetry listener and, with the rules of `Helm/coffre/files/coffre-alerts.yaml`, fires
    /// CoffreNodeDown when a node is killed (`Tests/Python/prometheus_alerts.py`); the rules
    /// pass `promtool check rules` and their unit tests; and the daemons' JSON-lines logs, at
    /// debug level, hold no password, token, key or link secret.
    @Suite(.serialized, .timeLimit(.minutes(5))) struct TelemetryClusterTests {
        @Test func alertRulesPassPromtool() async throws {
            let check = try await runProcessInBackground("promtool", ["check", "rules", repositoryRoot + "/Helm/coffre/files/coffre-alerts.yaml"])
            #expect(check.status == 0, "\(check.output)")
            let test = try await runProcessInBackground("promtool", ["test", "rules", repositoryRoot + "/Helm/coffre/files/coffre-alerts.test.yaml"])
            #expect(test.status == 0, "\(test.output)")
        }

        @Test func prometheusScrapesEveryDaemonAndANodeKilledFiresItsAlert() async throws {
            try await withTemporaryDirectory { folder in
                var topology = smallTopology("telemetry")
                topology.logFormat = "json"
                topology.logLevel = "debug"
                let running = try await RunningCluster(folder: folder, topology: topology)
                await running.run { running in
                    // Work that leaves figures and log lines: an account, an upload, links.
                    let client = try running.client(via: "IS")
                    let password = "correct horse battery staple 7"
                    _ = try await client.register(username: "watched", password: password, parameters: .minimum)
                    let session = try await client.login(username: "watched", password: password)
                    let content = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                    try Data(content).write(to: URL(fileURLWithPath: folder + "/file.bin"))
                    _ = try await client.upload(folder + "/file.bin", to: "/watched.bin", session)
                    let (url, _) = try await client.createLink("/watched.bin", session)
                    let linkPassword = "link password 42"
                    let (guarded, _) = try await client.createLink("/watched.bin", session, password: linkPassword, iterations: Limits.linkPasswordIterationsMin)
                    _ = try await client.downloadLink(url, to: folder + "/via-link.bin")
                    _ = try await client.downloadLink(guarded, to: folder + "/via-guarded.bin", password: linkPassword)
                    #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/via-link.bin")) == Data(content))

                    let result = try await runProcessInBackground(
                        "python3", [repositoryRoot + "/Tests/Python/prometheus_alerts.py", running.cluster.folder, "--kill", "node is-1"])
                    print(result.output)
                    #expect(result.status == 0, "prometheus_alerts.py failed")

                    // The logs: one JSON object per line from every daemon, and no secret.
                    let secrets: [(String, String)] = [
                        ("account password", password), ("link password", linkPassword), ("session token", session.token),
                        ("master key", session.masterKey), ("admin token", try #require(running.profile.adminToken)),
                        ("link secret", String(url.split(separator: "#").last!)),
                        ("password link secret", String(guarded.split(separator: "#").last!)),
                    ]
                    let logs = running.cluster.folder + "/logs"
                    var lines = 0
                    for file in try FileManager.default.contentsOfDirectory(atPath: logs) {
                        let text = try String(contentsOfFile: logs + "/" + file, encoding: .utf8)
                        for (name, secret) in secrets {
                            #expect(!text.contains(secret), "\(file) holds the \(name)")
                        }
                        guard file.hasPrefix("node-") || file.hasPrefix("coordinator-") else { continue }
                        for line in text.split(separator: "\n") {
                            lines += 1
                            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                            #expect(object?["time"] is String && object?["level"] is String && object?["message"] is String, "\(file): \(line)")
                        }
                    }
                    #expect(lines > 20, "the daemons logged \(lines) lines at debug level")
                }
            }
        }
    }
}
