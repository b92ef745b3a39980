@testable import CoffreClient
import CoffreAPI
import CoffreModel
import Encryption
import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// Share links in a real browser (`Tests/Python/link_page.py`: Debian's headless Chromium
    /// and Selenium) against a real local cluster: a 256 MiB file saved byte-identical with the
    /// page's memory measured (bounded, below the file's size), a password link unlocked within 3 s, a folder link, altered
    /// ciphertext, a wrong fragment, revoked and expired links; the independent Python reader
    /// on the same links. Then the coordinators' logs and every stored byte are searched for
    /// the fragments: they never reached a server.
    @Suite(.serialized, .timeLimit(.minutes(8))) struct LinkPageTests {
        @Test func linksOpenInABrowserAndTheirKeysNeverReachAServer() async throws {
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder, topology: smallTopology("page"))
                await running.run { running in
                    let client = try running.client(via: "IS")
                    _ = try await client.register(username: "sharer", password: "page password 1", parameters: .minimum)
                    let session = try await client.login(username: "sharer", password: "page password 1")
                    func file(_ name: String, _ size: Int, seed: UInt8) throws -> String {
                        let path = folder + "/" + name
                        try Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ Int(seed) &+ ($0 >> 16)) }).write(to: URL(fileURLWithPath: path))
                        return path
                    }
                    // Larger than what the page may hold, to show its memory stays bounded.
                    let big = try file("big.bin", 256 << 20, seed: 1)
                    let small = try file("small report.pdf", 3 << 20 + 123, seed: 2)
                    let beach = try file("beach.jpg", (1 << 20) + 7, seed: 3)
                    let todo = try file("todo.txt", 1000, seed: 4)
                    _ = try await client.upload(big, to: "/big.bin", session)
                    _ = try await client.upload(small, to: "/small report.pdf", session)
                    _ = try await client.mkdir("/Holiday", session)
                    _ = try await client.upload(beach, to: "/Holiday/beach.jpg", session)
                    _ = try await client.mkdir("/Holiday/notes", session)
                    _ = try await client.upload(todo, to: "/Holiday/notes/todo.txt", session)

                    let (bigLink, _) = try await client.createLink("/big.bin", session)
                    let linkPassword = "ouvre-toi sésame 2026"
                    let (guarded, _) = try await client.createLink("/small report.pdf", session, password: linkPassword)
                    let (folderLink, _) = try await client.createLink("/Holiday", session)
                    let (smallLink, _) = try await client.createLink("/small report.pdf", session)
                    let (revoked, revokedId) = try await client.createLink("/small report.pdf", session)
                    try await client.revokeLink(revokedId, session)
                    let (expired, _) = try await client.createLink("/small report.pdf", session, expiresIn: 1)
                    let (takenDown, takenDownId) = try await client.createLink("/small report.pdf", session)
                    _ = try await client.adminCreateTakedown(
                        CreateTakedownRequest(linkId: takenDownId, reason: .copyright, notice: "DMCA-2026-0042", scope: nil, file: false))
                    // The sub-folder is mid-way through a key change (started, its child not
                    // re-wrapped yet, as when its share ended a moment ago): every link reader
                    // below (the page, the Python reader, the CLI) opens the child under the
                    // folder's previous key.
                    let notes = try await client.locate("/Holiday/notes", session)
                    _ = try await client.changeKey(of: notes.id, shares: [], stopBefore: .children, session)
                    #expect(try await client.locate("/Holiday/notes", session).previousKey != nil)
                    #expect(try await client.listLink(folderLink, path: "notes").map(\.name) == ["todo.txt"])
                    let stranger = try running.client(via: "IS")
                    try await awaitCondition("the link expired", seconds: 15) {
                        do { _ = try await stranger.listLink(expired) } catch let error as ClientError where error.code == .notFound { return true }
                        return false
                    }
                    // Another account's link, its transfer quota used up by one download.
                    let spender = try await newAccount(client, "spender")
                    _ = try await client.upload(small, to: "/spent.pdf", spender)
                    let (overQuota, _) = try await client.createLink("/spent.pdf", spender)
                    let spent = try #require(try await client.list("/spent.pdf", spender).first?.size)
                    _ = try await client.adminSetAccount("spender", quotaBytes: nil, transferQuotaBytes: Int64(spent) + 1000)
                    try await client.download("/spent.pdf", to: folder + "/spent.pdf", spender)
                    let base = String(smallLink.split(separator: "#")[0])
                    let wrongFragment = base + "#" + Base64URL.encode((0..<32).map { _ in UInt8.random(in: 0...255) })

                    let spec: [String: Any] = [
                        "download_dir": folder + "/downloads",
                        "screenshot": ProcessInfo.processInfo.environment["COFFRE_PAGE_SCREENSHOT"] ?? folder + "/page.png",
                        "file": ["url": bigLink, "path": big, "name": "big.bin"],
                        "password": ["url": guarded, "password": linkPassword, "path": small, "name": "small report.pdf"],
                        "folder": [
                            "url": folderLink, "names": ["beach.jpg", "notes"], "file": ["name": "beach.jpg", "path": beach],
                            "subfolder": ["name": "notes", "names": ["todo.txt"]],
                        ],
                        "tamper": ["url": smallLink],
                        "wrong_fragment": wrongFragment, "revoked": revoked, "expired": expired,
                        "taken_down": ["url": takenDown, "notice": "DMCA-2026-0042"],
                        "over_quota": ["url": overQuota],
                    ]
                    try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: folder + "/spec.json"))
                    let result = try await runProcessInBackground("python3", [repositoryRoot + "/Tests/Python/link_page.py", folder + "/spec.json"])
                    print(result.output)
                    #expect(result.status == 0, "link_page.py failed")
                    #expect(result.output.contains(" passed, 0 failed"))

                    // The independent reader (Tests/Python/link_client.py, written from Docs/keys.md
                    // and Docs/format.md alone) against the same links: whole, ranges, password, folder.
                    let ca = running.cluster.folder + "/certs/ca.pem"
                    func reader(_ arguments: [String], password: String? = nil) async throws -> (Int32, String) {
                        try await runProcessInBackground(
                            "python3", [repositoryRoot + "/Tests/Python/link_client.py", "--ca", ca] + arguments,
                            environment: password.map { ["COFFRE_TEST_LINK_PASSWORD": $0] } ?? [:])
                    }
                    let whole = try await reader([smallLink, folder + "/py-small.bin", "--json"])
                    #expect(try whole.0 == 0 && Data(contentsOf: URL(fileURLWithPath: folder + "/py-small.bin")) == Data(contentsOf: URL(fileURLWithPath: small)), "\(whole.1)")
                    let guardedRead = try await reader([guarded, folder + "/py-guarded.bin", "--password-env", "COFFRE_TEST_LINK_PASSWORD"], password: linkPassword)
                    #expect(try guardedRead.0 == 0 && Data(contentsOf: URL(fileURLWithPath: folder + "/py-guarded.bin")) == Data(contentsOf: URL(fileURLWithPath: small)), "\(guardedRead.1)")
                    let refused = try await reader([guarded, folder + "/py-refused.bin", "--password-env", "COFFRE_TEST_LINK_PASSWORD"], password: "not it")
                    #expect(refused.0 == 1 && refused.1.contains("decryption_failed"), "\(refused.1)")
                    let smallBytes = try Data(contentsOf: URL(fileURLWithPath: small))
                    for (start, end) in [(0, 0), (65_530, 65_600), (smallBytes.count - 10, smallBytes.count - 1)] {
                        let part = try await reader([guarded, folder + "/py-range.bin", "--range", "\(start)-\(end)", "--password-env", "COFFRE_TEST_LINK_PASSWORD"], password: linkPassword)
                        #expect(try part.0 == 0 && Data(contentsOf: URL(fileURLWithPath: folder + "/py-range.bin")) == smallBytes[start...end], "range \(start)-\(end): \(part.1)")
                    }
                    let tree = try await reader([folderLink, folder + "/py-holiday"])
                    #expect(tree.0 == 0, "\(tree.1)")
                    #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/py-holiday/beach.jpg")) == Data(contentsOf: URL(fileURLWithPath: beach)))
                    #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/py-holiday/notes/todo.txt")) == Data(contentsOf: URL(fileURLWithPath: todo)))

                    // No fragment, in text or as bytes, and no link password anywhere a server wrote.
                    var secrets: [(String, [UInt8])] = [("link password", Array(linkPassword.utf8))]
                    for (name, url) in [("big", bigLink), ("password", guarded), ("folder", folderLink), ("small", smallLink), ("wrong", wrongFragment)] {
                        let fragment = String(url.split(separator: "#")[1])
                        secrets.append(("\(name) link fragment", Array(fragment.utf8)))
                        secrets.append(("\(name) link secret", try #require(Base64URL.decode(fragment))))
                    }
                    var scanned = 0
                    let logs = running.cluster.folder + "/logs"
                    let files = running.storedFiles() + (try FileManager.default.contentsOfDirectory(atPath: logs)).map { logs + "/" + $0 }
                    for path in files {
                        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                        scanned += bytes.count
                        for (what, secret) in secrets {
                            #expect(!contains(bytes, secret), "\(what) found in \(path)")
                        }
                    }
                    #expect(scanned > 64 << 20, "the scan covered logs, metadata and shards (\(scanned) bytes)")
                }
            }
        }
    }
}
