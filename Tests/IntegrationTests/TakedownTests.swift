import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation
import LocalCluster
import Testing
import TestSupport
import Transparency

extension RealClusters {
    /// Takedowns on a real cluster (4 countries, etcd over TLS): a link taken down in one
    /// country is refused by that country's coordinator and served by the others; a file taken
    /// down everywhere is refused through every link and to its owner; the owner sees and
    /// appeals; restores bring everything back; bad input changes nothing; the transparency log
    /// verifies, and an entry edited directly in etcd is named by `coffre transparency verify`.
    @Suite(.serialized, .timeLimit(.minutes(6))) struct TakedownTests {
        @Test func takedownsInOneCountryOrAllAreRefusedThereAppealedRestoredAndLogged() async throws {
            try await withHealingCluster("takedown", via: "DE", user: "olga") { running, de, session, folder in
                let bytes = SeededGenerator(seed: 11).bytesOnce(300_000)
                try Data(bytes).write(to: URL(fileURLWithPath: folder + "/song"))
                _ = try await de.upload(folder + "/song", to: "/song", session)
                let (url, linkId) = try await de.createLink("/song", session)
                let (otherURL, _) = try await de.createLink("/song", session)

                /// What reading a link through one country's coordinator gives: nil when the
                /// bytes come back whole, else the error's code.
                func read(_ url: String, via country: String) async throws -> ErrorCode? {
                    let client = running.track(try CoffreClient.forLink(url, profile: running.profile, via: country))
                    do {
                        let got = try await client.readLink(url, range: 0..<UInt64(bytes.count))
                        return got == bytes ? nil : ErrorCode("wrong_bytes")
                    } catch let error as ClientError {
                        return error.code
                    }
                }
                func ownerDownload() async throws -> ErrorCode? {
                    do {
                        return try await de.read("/song", range: 0..<10, session) == Array(bytes[0..<10]) ? nil : ErrorCode("wrong_bytes")
                    } catch let error as ClientError {
                        return error.code
                    }
                }
                #expect(try await read(url, via: "FR") == nil)

                // A link taken down in France: refused through France's coordinator only.
                let inFrance = try await de.adminCreateTakedown(
                    CreateTakedownRequest(linkId: linkId, reason: .copyright, notice: "TJ-Paris-2026-114", scope: "country:FR", file: false))
                #expect(inFrance.inForce && inFrance.notice.target == "link" && inFrance.owner == "olga")
                #expect(try await read(url, via: "FR") == .linkTakenDown)
                #expect(try await read(url, via: "DE") == nil)
                #expect(try await read(url, via: "NZ") == nil)
                #expect(try await read(otherURL, via: "FR") == nil, "another link to the file is not taken down")
                #expect(try await ownerDownload() == nil)

                // The refusal names the notice, for any client; the browser gets its page, 451.
                let france = try #require(running.profile.coordinators.first { $0.country == "FR" }?.url)
                let (status, body) = try await curl(france + "/v1/l/" + linkId)
                let refusal = try JSONDecoder().decode(APIErrorBody.self, from: Data(body.utf8))
                #expect(status == 451 && refusal.error.code == "link_taken_down" && refusal.error.takedown?.notice == "TJ-Paris-2026-114")
                #expect(refusal.error.message.contains("in FR") && refusal.error.takedown?.scope.country?.code == "FR")
                let (pageStatus, page) = try await curl(france + "/l/" + linkId, accept: "text/html")
                #expect(pageStatus == 451 && page.contains("<html"))

                // The file itself, everywhere: every link to it and its owner are refused.
                let everywhere = try await de.adminCreateTakedown(
                    CreateTakedownRequest(linkId: linkId, reason: .illegal, notice: "CASE-77", scope: nil, file: true))
                #expect(try await read(otherURL, via: "DE") == .fileTakenDown)
                #expect(try await read(otherURL, via: "CH") == .fileTakenDown)
                #expect(try await ownerDownload() == .fileTakenDown)

                // The owner sees both, and appeals one; the operator reads the appeal.
                let mine = try await de.takedowns(session)
                #expect(Set(mine.map(\.notice.id)) == [inFrance.notice.id, everywhere.notice.id] && mine.allSatisfy(\.inForce))
                #expect(mine.first { $0.notice.target == "file" }?.nodeId == everywhere.nodeId)
                _ = try await de.appealTakedown(everywhere.notice.id, message: "I made this recording.\nThe notice names another work.", session)
                let shown = try await de.adminTakedown(everywhere.notice.id)
                #expect(shown.appeals.map(\.message) == ["I made this recording.\nThe notice names another work."])

                // Bad input: a stable code each, and nothing changes (not even the log).
                let logged = try await de.transparencyLog().entries.count
                #expect(logged == 3)
                let stranger = try await newAccount(de, "stranger")
                let token = try #require(running.profile.adminToken)
                let unknownLink = Base64URL.encode([UInt8](repeating: 7, count: 16))
                func create(_ link: String, scope: String?, notice: String = "x") async throws -> ErrorCode? {
                    try await code { _ = try await de.adminCreateTakedown(.init(linkId: link, reason: .other, notice: notice, scope: scope, file: false)) }
                }
                var bad: [(String, ErrorCode?, ErrorCode)] = []
                bad.append(("a link id that is not one", try await create("nope", scope: nil), .invalidArgument))
                bad.append(("a link that does not exist", try await create(unknownLink, scope: nil), .notFound))
                bad.append(("a scope that is not one", try await create(linkId, scope: "country:France"), .invalidArgument))
                bad.append(("an empty notice", try await create(linkId, scope: nil, notice: "  "), .invalidArgument))
                bad.append(("the same scope twice", try await create(linkId, scope: "country:fr", notice: "again"), .conflict))
                bad.append(("an appeal of another's takedown", try await code { _ = try await de.appealTakedown(everywhere.notice.id, message: "mine?", stranger) }, .notFound))
                bad.append(("an empty appeal", try await code { _ = try await de.appealTakedown(everywhere.notice.id, message: "", session) }, .invalidArgument))
                bad.append(("a takedown id that is not one", try await code { _ = try await de.adminRestoreTakedown("abc", note: nil) }, .invalidArgument))
                bad.append(("an unknown takedown", try await code { _ = try await de.adminRestoreTakedown("0000000000000-abcdefgh", note: nil) }, .notFound))
                for (what, got, want) in bad { #expect(got == want, "\(what): \(got.map(\.rawValue) ?? "accepted")") }
                let (reasonStatus, reasonBody) = try await curl(
                    france + "/v1/admin/takedowns", method: "POST", token: token, json: #"{"linkId":"\#(linkId)","reason":"dislike","notice":"x"}"#)
                #expect(reasonStatus == 400 && reasonBody.contains("invalid_argument"))
                let (userStatus, _) = try await curl(
                    france + "/v1/admin/takedowns", method: "POST", token: session.token, json: #"{"linkId":"\#(linkId)","reason":"other","notice":"x"}"#)
                #expect(userStatus == 401, "a user's session is not the admin token")
                #expect(try await de.transparencyLog().entries.count == logged)
                #expect(try await de.adminTakedowns().count == 2)

                // Restores bring each back, once.
                _ = try await de.adminRestoreTakedown(everywhere.notice.id, note: "counter-notice accepted")
                #expect(try await read(otherURL, via: "DE") == nil)
                #expect(try await ownerDownload() == nil)
                #expect(try await read(url, via: "FR") == .linkTakenDown)
                #expect(try await code { _ = try await de.adminRestoreTakedown(everywhere.notice.id, note: nil) } == .conflict)
                _ = try await de.adminRestoreTakedown(inFrance.notice.id, note: nil)
                #expect(try await read(url, via: "FR") == nil)
                #expect(try await de.adminTakedowns().allSatisfy { !$0.inForce })

                // One file below a folder link, by the node id `verify` lists: the rest still serves.
                _ = try await de.mkdir("/album", session)
                _ = try await de.upload(folder + "/song", to: "/album/one", session)
                _ = try await de.upload(folder + "/song", to: "/album/two", session)
                let (albumURL, albumId) = try await de.createLink("/album", session)
                let albumReader = running.track(try CoffreClient.forLink(albumURL, profile: running.profile, via: "NZ"))
                let listed = try await albumReader.listLink(albumURL)
                let one = try #require(listed.first { $0.name == "one" })
                let oneDown = try await de.adminCreateTakedown(
                    CreateTakedownRequest(linkId: albumId, reason: .copyright, notice: "DMCA-3", scope: nil, file: true, nodeId: one.id))
                #expect(oneDown.notice.target == "file" && oneDown.nodeId == one.id)
                let albumCopy = folder + "/album-copy"
                #expect(try await code { try await albumReader.downloadLink(albumURL, to: albumCopy) } == .fileTakenDown)
                #expect(try await albumReader.listLink(albumURL, path: nil).count == 2, "the folder still lists")
                let outside = try #require(try await de.list("/", session).first { $0.name == "song" })
                #expect(try await code {
                    _ = try await de.adminCreateTakedown(.init(linkId: albumId, reason: .other, notice: "x", scope: nil, file: true, nodeId: outside.id))
                } == .notFound, "a node the link does not reach")
                _ = try await de.adminRestoreTakedown(oneDown.notice.id, note: nil)
                try? FileManager.default.removeItem(atPath: albumCopy)
                #expect(try await albumReader.downloadLink(albumURL, to: albumCopy).files == 2)

                // (Pinned keys in the test's folder: a run leaves nothing in $COFFRE_HOME.)
                let sharing = running.track(try CoffreClient(profile: running.profile, via: "DE", contactsFile: folder + "/olga-contacts.json"))
                let receiving = running.track(try CoffreClient(profile: running.profile, via: "DE", contactsFile: folder + "/stranger-contacts.json"))
                _ = try await sharing.share("/album", with: "stranger", write: false, session)
                #expect(try await receiving.list("@olga/album", stranger).count == 2)

                // A suspended account cannot act, and its links serve nothing; nothing is lost
                // when the suspension is lifted. Its storage quota is the operator's.
                let suspended = try await de.adminSuspend("olga", reason: "repeated infringement")
                #expect(suspended.suspension?.reason == "repeated infringement" && suspended.usedBytes > 0)
                #expect(try await ownerDownload() == .accountSuspended)
                #expect(try await read(url, via: "CH") == .accountSuspended)
                // It still signs in, to read why and to see (and appeal) its takedowns.
                let again = try await de.login(username: "olga", password: "pw for olga")
                #expect(try await de.whoami(again).suspension?.reason == "repeated infringement")
                #expect(try await de.takedowns(again).count == 3)
                #expect(try await code { _ = try await de.mkdir("/new", again) } == .accountSuspended)
                #expect(try await code { _ = try await receiving.list("@olga/album", stranger) } == .accountSuspended, "its shared folders are closed too")
                #expect(try await code { _ = try await de.login(username: "olga", password: "a wrong password") } == .unauthenticated)
                #expect(try await code { _ = try await de.adminSuspend("olga", reason: "twice") } == .conflict)
                _ = try await de.adminSuspend("olga", reason: "appeal upheld", suspend: false)
                #expect(try await receiving.list("@olga/album", stranger).count == 2)
                #expect(try await ownerDownload() == nil)
                #expect(try await read(url, via: "CH") == nil)
                let limited = try await de.adminSetAccount("olga", quotaBytes: suspended.usedBytes + 1000)
                #expect(limited.quotaBytes == suspended.usedBytes + 1000)
                #expect(try await code { _ = try await de.upload(folder + "/song", to: "/song-again", session) } == .quotaExceeded)
                #expect(try await code { _ = try await de.adminSetAccount("olga", quotaBytes: -1) } == .invalidArgument)
                #expect(try await code { _ = try await de.adminAccount("nobody-here") } == .notFound)

                // The log: two takedowns, an appeal, two restores, a suspension and its end; the
                // link and account ids only hashed.
                let (entries, key) = try await de.transparencyLog()
                #expect(entries.map(\.action) == ["takedown", "takedown", "appeal", "restore", "restore", "takedown", "restore", "suspend", "unsuspend"])
                let report = TransparencyLog.verify(entries, trusted: [key])
                #expect(report.valid, "\(report.problems)")
                // Signed with the cluster's key file, not a key derived from the admin token.
                let keyFile = try String(contentsOfFile: running.cluster.folder + "/certs/transparency.key", encoding: .utf8)
                #expect(try TransparencyLog(seed: TransparencyLog.seed(keyFile: keyFile)).publicKey == key)
                #expect(key != TransparencyLog(adminToken: try #require(running.profile.adminToken)).publicKey)
                #expect(report.byReason == ["copyright": 2, "illegal": 1] && report.byScope == ["country:FR": 1, "global": 2])
                #expect(entries.prefix(5).allSatisfy { $0.subject == TransparencyLog.subject(linkId) })
                #expect(entries[5].subject == TransparencyLog.subject(albumId))
                #expect(entries.suffix(2).allSatisfy { $0.subject == TransparencyLog.subject(session.accountId) && $0.target == "account" })
                let (_, published) = try await curl(france + "/v1/transparency")
                #expect(!published.contains(linkId) && !published.contains(session.token) && !published.contains(session.accountId))

                // The operator's CLI: a takedown by URL (the fragment stays here), refused
                // through New Zealand with exit 10, listed, restored; the claim checked locally.
                let coffre = builtExecutable("coffre")
                let environment = ["COFFRE_HOME": folder + "/home"]
                func cli(_ arguments: [String]) async throws -> (status: Int32, output: String) {
                    try await runProcessInBackground(coffre, arguments + ["--profile", running.cluster.folder + "/profile.json"], environment: environment)
                }
                let made = try await cli(["admin", "takedown", "create", otherURL, "--reason", "other", "--notice", "CLI-1", "--scope", "country:NZ", "--json"])
                #expect(made.status == 0, "\(made.output)")
                let byCLI = try JSONDecoder().decode(TakedownInfo.self, from: Data(made.output.utf8))
                #expect(byCLI.notice.scope.country?.code == "NZ" && byCLI.notice.reason == .other)
                let get = try await cli(["get", otherURL, folder + "/via-nz", "--via", "NZ"])
                #expect(get.status == 10 && get.output.contains("link_taken_down") && get.output.contains("CLI-1"), "\(get.output)")
                #expect(try await cli(["admin", "takedown", "create", otherURL, "--reason", "dislike", "--notice", "x"]).status == 2)
                let inForce = try await cli(["admin", "takedown", "list", "--in-force", "--json"])
                #expect(try JSONDecoder().decode([TakedownInfo].self, from: Data(inForce.output.utf8)).map(\.notice.id) == [byCLI.notice.id])
                #expect(try await cli(["admin", "takedown", "restore", byCLI.notice.id, "--note", "withdrawn"]).status == 0)
                #expect(try await read(otherURL, via: "NZ") == nil)
                let checked = try await cli(["admin", "takedown", "verify", otherURL, "--json"])
                var digest = ContentDigest()
                digest.update(bytes)
                #expect(checked.status == 0 && checked.output.contains(digest.finish()) && checked.output.contains("song"), "\(checked.output)")

                // `coffre transparency verify` agrees, then finds an entry edited in etcd.
                let arguments = ["transparency", "verify", "--json", "--profile", running.cluster.folder + "/profile.json"]
                let first = try await runProcessInBackground(coffre, arguments, environment: environment)
                #expect(first.status == 0, "\(first.output)")
                let edited = entries[2]
                var tampered = try JSONSerialization.jsonObject(with: JSONEncoder().encode(edited)) as! [String: Any]
                tampered["notice"] = "nothing to see"
                let certs = running.cluster.folder + "/certs/etcd"
                let put = try await runProcessInBackground("/usr/bin/etcdctl", [
                    "--endpoints", "https://127.0.0.1:\(running.cluster.topology.basePort)", "--cacert", certs + "/ca.pem",
                    "--cert", certs + "/client-coordinator-fr.pem", "--key", certs + "/client-coordinator-fr-key.pem",
                    "put", "transparency/" + String(repeating: "0", count: 19) + "2",
                    String(decoding: try JSONSerialization.data(withJSONObject: tampered), as: UTF8.self),
                ])
                #expect(put.status == 0, "\(put.output)")
                let second = try await runProcessInBackground(coffre, arguments, environment: environment)
                #expect(second.status == 8, "\(second.output)")
                let found = try JSONDecoder().decode(TransparencyReport.self, from: Data(second.output.utf8.drop { $0 != UInt8(ascii: "{") }))
                #expect(!found.valid && found.problems.map(\.seq) == [2], "\(found.problems)")

                // The last entry removed: the chain left is whole, but the head the first
                // verify remembered is gone.
                let verified = try JSONDecoder().decode(TransparencyReport.self, from: Data(first.output.utf8.drop { $0 != UInt8(ascii: "{") }))
                let last = try #require(verified.headSeq)
                let del = try await runProcessInBackground("/usr/bin/etcdctl", [
                    "--endpoints", "https://127.0.0.1:\(running.cluster.topology.basePort)", "--cacert", certs + "/ca.pem",
                    "--cert", certs + "/client-coordinator-fr.pem", "--key", certs + "/client-coordinator-fr-key.pem",
                    "del", "transparency/" + String(format: "%020lld", last),
                ])
                #expect(del.status == 0, "\(del.output)")
                let third = try await runProcessInBackground(coffre, arguments, environment: environment)
                let cut = try JSONDecoder().decode(TransparencyReport.self, from: Data(third.output.utf8.drop { $0 != UInt8(ascii: "{") }))
                #expect(third.status == 8 && cut.problems.contains { $0.seq == last && $0.problem.contains("cut short") }, "\(cut.problems)")
            }
        }
    }
}

/// The code a call fails with (nil: it succeeded).
private func code(_ body: () async throws -> Void) async throws -> ErrorCode? {
    do {
        try await body()
        return nil
    } catch let error as ClientError {
        return error.code
    }
}

/// A request made as any HTTP client would: the status and the body.
private func curl(_ url: String, method: String = "GET", accept: String = "application/json", token: String? = nil, json: String? = nil) async throws -> (Int, String) {
    var arguments = ["-sk", "-w", "\n%{http_code}", "-X", method, "-H", "accept: " + accept, url]
    if let token { arguments += ["-H", "authorization: Bearer " + token] }
    if let json { arguments += ["-H", "content-type: application/json", "--data-binary", json] }
    let (status, output) = try await runProcessInBackground("curl", arguments)
    let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    guard status == 0, let last = lines.last, let code = Int(last.trimmingCharacters(in: .whitespaces)) else { throw LocalClusterError("curl failed: \(output)") }
    return (code, lines.dropLast().joined(separator: "\n"))
}
