import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// A hostile client (`Tests/Python/hostile_http.py`, raw HTTP/1.1 over TLS) against a real
    /// coordinator and a real storage node: every malformed request, oversized header, URL or
    /// body, bad framing, forged admin token, slow client and wrong password is answered as
    /// `Docs/api.md` says, with a JSON error and a stable code; then a seeded fuzzer of malformed
    /// requests for 20 s finds no 5xx, no undocumented error body and no daemon that stops.
    /// `hostile_h2.py` does the same over HTTP/2 (rapid reset, CONTINUATION floods, too many
    /// streams, broken frames, a frame fuzzer) and checks that a connection that never starts
    /// TLS is closed.
    @Suite(.serialized, .timeLimit(.minutes(5))) struct HostileClientTests {
        @Test func malformedSlowAndAbusiveRequestsGetDocumentedAnswers() async throws {
            try await withTemporaryDirectory { folder in
                var topology = smallTopology("hostile")
                topology.requestsInFlightMax = 24
                let running = try await RunningCluster(folder: folder, topology: topology)
                await running.run { running in
                    let session = try await newAccount(try running.client(via: "IS"), "hostile-uploader")
                    let seed = UInt64.random(in: 0..<(1 << 32))
                    print("hostile client seed \(seed)")
                    let result = try await runProcessInBackground(
                        "python3", [repositoryRoot + "/Tests/Python/hostile_http.py", running.cluster.folder, "--seed", String(seed), "--fuzz-seconds", "20",
                         "--token", session.token])
                    print(result.output)
                    #expect(result.status == 0, "hostile_http.py failed (seed \(seed)); rerun: python3 Tests/Python/hostile_http.py CLUSTER --seed \(seed)")
                    // The same over HTTP/2: rapid reset, CONTINUATION floods, broken frames, a fuzzer.
                    let h2 = try await runProcessInBackground(
                        "python3", [repositoryRoot + "/Tests/Python/hostile_h2.py", running.cluster.folder, "--seed", String(seed), "--fuzz-seconds", "15"])
                    print(h2.output)
                    #expect(h2.status == 0, "hostile_h2.py failed (seed \(seed)); rerun: python3 Tests/Python/hostile_h2.py CLUSTER --seed \(seed)")
                }
            }
        }
    }
}
