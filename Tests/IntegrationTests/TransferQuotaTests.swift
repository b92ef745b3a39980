import CoffreAPI
import CoffreClient
import CoffreModel
import Encryption
import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// Transfer quotas on a real cluster (4 countries, etcd, 4 coordinators) with a 30 s window
    /// (1 s buckets) and counts flushed every second: what an account's files serve through
    /// one coordinator counts on the others; past the quota, downloads by the owner and through
    /// its links are refused with `transfer_quota_exceeded` and a `Retry-After`, a range that
    /// fits is still served; the operator raises and lowers the quota; bad input changes
    /// nothing; once the bytes leave the window, downloads are served again.
    @Suite(.serialized, .timeLimit(.minutes(6))) struct TransferQuotaTests {
        static let quota: Int64 = 1_000_000

        @Test func theQuotaIsReachedAcrossCoordinatorsRefusedRaisedAndReset() async throws {
            var topology = healingTopology("transfer")
            topology.transferQuotaBytesDefault = Self.quota
            topology.transferWindowSeconds = 30
            topology.transferFlushSeconds = 1
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder, topology: topology)
                await running.run { running in
                    let de = try running.client(via: "DE")
                    let fr = try running.client(via: "FR")
                    let session = try await newAccount(de, "tess")
                    let bytes = SeededGenerator(seed: 17).bytesOnce(400_000)
                    try Data(bytes).write(to: URL(fileURLWithPath: folder + "/film"))
                    _ = try await de.upload(folder + "/film", to: "/film", session)
                    let served = Int64(FileFormat.ciphertextLength(plaintextLength: UInt64(bytes.count)))
                    let (url, _) = try await de.createLink("/film", session)

                    let fresh = try #require(try await de.whoami(session).transfer)
                    #expect(fresh.quotaBytes == Self.quota && fresh.usedBytes == 0 && fresh.windowSeconds == 30 && fresh.resetsAt == nil)

                    func download(_ client: CoffreClient, link: Bool = false) async throws -> ErrorCode? {
                        let target = folder + "/got-\(UUID().uuidString)"
                        do {
                            if link {
                                let reader = running.track(try CoffreClient.forLink(url, profile: running.profile, via: client === fr ? "FR" : "NZ"))
                                _ = try await reader.downloadLink(url, to: target)
                            } else {
                                try await client.download("/film", to: target, session)
                            }
                            return try Data(contentsOf: URL(fileURLWithPath: target)) == Data(bytes) ? nil : ErrorCode("wrong_bytes")
                        } catch let error as ClientError {
                            return error.code
                        }
                    }
                    // The owner through Germany, a visitor through France's link: both count,
                    // and Germany sees France's bytes after a flush.
                    let started = Int64(Date().timeIntervalSince1970 * 1000)
                    #expect(try await download(de) == nil)
                    #expect(try await download(fr, link: true) == nil)
                    try await awaitCondition("Germany counts both downloads", seconds: 20) {
                        try await de.whoami(session).transfer?.usedBytes == 2 * served
                    }
                    let counted = try #require(try await de.whoami(session).transfer)
                    let resets = try #require(counted.resetsAt)
                    #expect(resets > started && resets <= started + 31_000, "the first bytes leave the window within 30 s")
                    #expect(try await de.adminAccount("tess").transfer?.usedBytes == 2 * served, "the operator sees the same")

                    // A third whole download would pass the quota: refused, to the owner and
                    // through the link, in any country; a range that fits is served.
                    #expect(2 * served + served > Self.quota && 2 * served + 150_000 < Self.quota)
                    #expect(try await download(de) == .transferQuotaExceeded)
                    #expect(try await download(fr, link: true) == .transferQuotaExceeded)
                    let nz = try running.client(via: "NZ")
                    #expect(try await download(nz) == .transferQuotaExceeded, "New Zealand reads the counts too")
                    #expect(try await de.read("/film", range: 0..<100_000, session) == Array(bytes[0..<100_000]))
                    let nzURL = try #require(running.profile.coordinators.first { $0.country == "NZ" }?.url)
                    let linkId = try #require(url.split(separator: "/").last?.split(separator: "#").first.map(String.init))
                    let (status, headers) = try await curlHeaders(nzURL + "/v1/l/" + linkId + "/content")
                    #expect(status == 429 && headers.contains("retry-after:"), "\(status) \(headers)")
                    #expect(!headers.contains(String(Self.quota)), "a link's visitor learns no figure")

                    // Another account is not touched.
                    let other = try await newAccount(de, "ugo")
                    #expect(try await de.whoami(other).transfer?.usedBytes == 0)

                    // Bad input: stable codes, nothing changed.
                    for bad: Int64 in [-1, Limits.accountQuotaBytesMax + 1] {
                        do {
                            _ = try await de.adminSetAccount("tess", quotaBytes: nil, transferQuotaBytes: bad)
                            Issue.record("transfer quota \(bad) was accepted")
                        } catch let error as ClientError {
                            #expect(error.code == .invalidArgument, "\(error)")
                        }
                    }
                    do {
                        _ = try await de.adminSetAccount("nobody", quotaBytes: nil, transferQuotaBytes: 5)
                        Issue.record("an unknown account was set")
                    } catch let error as ClientError {
                        #expect(error.code == .notFound, "\(error)")
                    }
                    #expect(try await de.adminAccount("tess").transfer?.quotaBytes == Self.quota)

                    // The operator raises the quota: served at once; lowers it back.
                    let raised = try await de.adminSetAccount("tess", quotaBytes: nil, transferQuotaBytes: 10_000_000)
                    #expect(raised.transfer?.quotaBytes == 10_000_000 && raised.quotaBytes == 1 << 30, "the storage quota is kept")
                    #expect(try await download(de) == nil)
                    _ = try await de.adminSetAccount("tess", quotaBytes: nil, transferQuotaBytes: Self.quota)
                    #expect(try await download(de) == .transferQuotaExceeded)

                    // Thirty seconds after, the bytes have left the window: served again.
                    try await awaitCondition("the window moved past the downloads", seconds: 60) {
                        try await download(fr, link: true) == nil
                    }
                    try await awaitCondition("the use shown drops", seconds: 20) {
                        (try await de.whoami(session).transfer?.usedBytes ?? .max) <= served
                    }
                }
            }
        }
    }
}

/// A GET's status and response headers (lower-cased), without its body.
private func curlHeaders(_ url: String) async throws -> (Int, String) {
    let (_, output) = try await runProcessInBackground("curl", ["-sk", "-o", "/dev/null", "-D", "-", "-w", "\n%{http_code}", url])
    let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n").lowercased())
}
