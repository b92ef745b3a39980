import CoffreAPI
@testable import CoffreClient
import CoffreModel
import Encryption
import Foundation
import LocalCluster
import Metadata
import Testing
import TestSupport

extension RealClusters {
    /// Folders shared between two accounts on a real cluster: read and write shares, what the
    /// coordinator refuses (stable codes), revocation, a share whose signature is forged, and
    /// a public key swapped directly in the metadata store, which the sender's pin catches.
    @Suite(.serialized, .timeLimit(.minutes(5))) struct UserShareTests {
        @Test func sharesReadWriteRevokeAndResistAServerThatLies() async throws {
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder, topology: smallTopology("shares"))
                await running.run { running in
                    // Two people, two machines: each client keeps its own pins.
                    let alice = try CoffreClient(profile: running.profile, contactsFile: folder + "/alice-contacts.json")
                    _ = try await alice.register(username: "alice", password: "alice password 1", parameters: .minimum)
                    let aliceSession = try await alice.login(username: "alice", password: "alice password 1")
                    _ = try await alice.register(username: "bob", password: "bob password 1", parameters: .minimum)
                    let bob = try CoffreClient(profile: running.profile, contactsFile: folder + "/bob-contacts.json")
                    defer { Task { try? await alice.shutdown(); try? await bob.shutdown() } }
                    let bobSession = try await bob.login(username: "bob", password: "bob password 1")
                    _ = try await alice.register(username: "eve", password: "eve password 1", parameters: .minimum)
                    let eveSession = try await alice.login(username: "eve", password: "eve password 1")

                    let report = folder + "/report.txt"
                    try Data("quarterly figures".utf8).write(to: URL(fileURLWithPath: report))
                    _ = try await alice.mkdir("/Team", aliceSession)
                    _ = try await alice.upload(report, to: "/Team/report.txt", aliceSession)
                    _ = try await alice.mkdir("/Private", aliceSession)

                    // Read only: bob lists and downloads; writing is refused with `forbidden`.
                    let shared = try await alice.share("/Team", with: "bob", write: false, aliceSession)
                    #expect(shared.name == "Team" && !shared.write)
                    let incoming = try await bob.shares(bobSession).incoming
                    #expect(incoming.map(\.name) == ["Team"] && incoming.first?.owner == "alice")
                    #expect(try await bob.list("@alice/Team", bobSession).map(\.name) == ["report.txt"])
                    try await bob.download("@alice/Team/report.txt", to: folder + "/got.txt", bobSession)
                    #expect(try String(contentsOfFile: folder + "/got.txt", encoding: .utf8) == "quarterly figures")
                    await #expect { _ = try await bob.upload(report, to: "@alice/Team/mine.txt", bobSession) } throws: {
                        ($0 as? ClientError)?.code == .forbidden
                    }
                    await #expect { try await bob.remove("@alice/Team/report.txt", recursive: false, bobSession) } throws: {
                        ($0 as? ClientError)?.code == .forbidden
                    }
                    // Nothing else of alice's is reachable, even by id.
                    await #expect { _ = try await bob.list("@alice/Private", bobSession) } throws: { ($0 as? ClientError)?.code == .notFound }

                    // Read and write: bob adds, renames and deletes inside; alice sees it all.
                    _ = try await alice.share("/Team", with: "bob", write: true, aliceSession)
                    let notes = folder + "/notes.txt"
                    try Data("bob's notes".utf8).write(to: URL(fileURLWithPath: notes))
                    _ = try await bob.upload(notes, to: "@alice/Team/", bobSession)
                    _ = try await bob.mkdir("@alice/Team/drafts", bobSession)
                    _ = try await bob.move("@alice/Team/notes.txt", to: "@alice/Team/drafts/notes v2.txt", bobSession)
                    try await bob.remove("@alice/Team/report.txt", recursive: false, bobSession)
                    #expect(try await alice.bin(aliceSession).map(\.path) == ["/Team/report.txt"], "bob's rm put it into alice's rubbish bin")
                    await #expect { try await bob.remove("@alice/Team", recursive: true, bobSession) } throws: { ($0 as? ClientError)?.code == .forbidden }
                    await #expect { _ = try await bob.move("@alice/Team/drafts", to: "/stolen", bobSession) } throws: {
                        ($0 as? ClientError)?.code == .invalidArgument
                    }
                    #expect(try await alice.list("/Team", aliceSession).map(\.name) == ["drafts"])
                    try await alice.download("/Team/drafts/notes v2.txt", to: folder + "/back.txt", aliceSession)
                    #expect(try String(contentsOfFile: folder + "/back.txt", encoding: .utf8) == "bob's notes")
                    #expect(try await alice.whoami(aliceSession).usedBytes > 0, "bob's upload counts against alice's quota")
                    #expect(try await bob.whoami(bobSession).usedBytes == 0)

                    // The coordinator itself refuses, whatever a client sends (raw requests with
                    // bob's token in alice's tree): nothing outside Team, and not Team itself.
                    let top = try await alice.list("/", aliceSession)
                    let privateId = try #require(top.first { $0.name == "Private" }?.id)
                    let teamNode = try #require(top.first { $0.name == "Team" }?.id)
                    let draftsNode = try #require(try await alice.list("/Team", aliceSession).first { $0.name == "drafts" }?.id)
                    let asOwner = "owner=\(aliceSession.accountId)"
                    let blob = Base64URL.encode([UInt8](repeating: 1, count: 61))
                    let tagText = Base64URL.encode([UInt8](repeating: 2, count: 16))
                    let folderBody = { (parent: String) in
                        CreateFolderRequest(id: Base64URL.encode((0..<16).map { _ in UInt8.random(in: 0...255) }), parent: parent, attributes: blob, wrappedKey: blob, nameTag: tagText)
                    }
                    let refusals: [(String, String, String, (any Encodable)?, Int)] = [
                        ("read a node outside the share", "GET", "/v1/nodes/\(privateId)?\(asOwner)", nil, 404),
                        ("list a folder outside the share", "GET", "/v1/nodes?parent=\(privateId)&\(asOwner)", nil, 404),
                        ("list the owner's root", "GET", "/v1/nodes?parent=root&\(asOwner)", nil, 404),
                        ("make a folder at the owner's root", "POST", "/v1/nodes?\(asOwner)", folderBody("root"), 404),
                        ("make a folder outside the share", "POST", "/v1/nodes?\(asOwner)", folderBody(privateId), 404),
                        ("move a node out of the share", "PATCH", "/v1/nodes/\(draftsNode)?\(asOwner)",
                         UpdateNodeRequest(parent: privateId, attributes: nil, wrappedKey: blob, nameTag: tagText), 404),
                        ("rename the shared folder", "PATCH", "/v1/nodes/\(teamNode)?\(asOwner)",
                         UpdateNodeRequest(parent: nil, attributes: blob, wrappedKey: nil, nameTag: tagText), 403),
                        ("delete the shared folder", "DELETE", "/v1/nodes/\(teamNode)?\(asOwner)", nil, 403),
                        ("rotate the owner's folder", "POST", "/v1/nodes/\(teamNode)/rekey?\(asOwner)",
                         RekeyFolderRequest(attributes: blob, wrappedKey: blob, previousKey: blob, shares: [], parent: "root"), 404),
                    ]
                    for (what, method, path, body, expected) in refusals {
                        let status = try await rawStatus(running, method, path, token: bobSession.token, json: body)
                        #expect(status == expected, "\(what): \(status)")
                    }
                    #expect(try await alice.list("/", aliceSession).map(\.name) == ["Private", "Team"])

                    // What bob holds before the share ends: the folder keys of Team and drafts
                    // (opened here from the raw answers, as a former recipient could keep them).
                    let bobIdentity = Identity(masterKey: try SecretKey(bytes: Base64URL.decode(bobSession.masterKey)!))
                    let raw = try JSONDecoder().decode(ShareList.self, from: try await rawJSON(running, "/v1/shares", token: bobSession.token))
                    let teamShare = try #require(raw.incoming.first)
                    let aliceKeys = try #require(try bob.contacts().first { $0.username == "alice" }?.keys)
                    let oldTeamKey = try UserShare.open(
                        SealedShare(
                            encapsulatedKey: Base64URL.decode(teamShare.sealed.encapsulatedKey)!, ciphertext: Base64URL.decode(teamShare.sealed.ciphertext)!,
                            signature: Base64URL.decode(teamShare.sealed.signature)!),
                        nodeId: teamShare.nodeId, senderId: "alice",
                        sender: PublicIdentity(signingKey: Base64URL.decode(aliceKeys.signingKey)!, agreementKey: Base64URL.decode(aliceKeys.agreementKey)!),
                        as: bobIdentity, recipientId: "bob")
                    let owner = "&owner=\(aliceSession.accountId)"
                    let teamChildren = try JSONDecoder().decode(NodeList.self, from: try await rawJSON(running, "/v1/nodes?parent=\(teamShare.nodeId)" + owner, token: bobSession.token))
                    let draftsInfo = try #require(teamChildren.nodes.first { $0.type == "folder" })
                    let oldDraftsKey = try NodeKeys.unwrap(
                        WrappedKey(bytes: Base64URL.decode(draftsInfo.wrappedKey)!), childId: draftsInfo.id, parentId: teamShare.nodeId, under: oldTeamKey)
                    // A third person keeps reading through the change.
                    _ = try await alice.register(username: "carol", password: "carol password 1", parameters: .minimum)
                    let carol = try CoffreClient(profile: running.profile, contactsFile: folder + "/carol-contacts.json")
                    defer { Task { try? await carol.shutdown() } }
                    let carolSession = try await carol.login(username: "carol", password: "carol password 1")
                    _ = try await alice.share("/Team", with: "carol", write: false, aliceSession)

                    // Unshare: bob is refused at once (what he downloaded he keeps), and Team and
                    // drafts get new keys; carol's share is sealed again.
                    #expect(try await alice.unshare("/Team", with: "bob", aliceSession) == 2)
                    #expect(try await bob.shares(bobSession).incoming.isEmpty)
                    _ = try await alice.upload(report, to: "/Team/after.txt", aliceSession)
                    _ = try await alice.upload(report, to: "/Team/drafts/after.txt", aliceSession)
                    #expect(try await carol.list("@alice/Team", carolSession).map(\.name) == ["after.txt", "drafts"])
                    try await carol.download("@alice/Team/drafts/notes v2.txt", to: folder + "/carol.txt", carolSession)
                    #expect(try await alice.list("/Team/drafts", aliceSession).map(\.name) == ["after.txt", "notes v2.txt"])
                    // Every record in both folders as the server holds it, the files added later
                    // and the one in the rubbish bin included: the keys bob had open none of them.
                    for (parentId, oldKey) in [(teamShare.nodeId, oldTeamKey), (draftsInfo.id, oldDraftsKey)] {
                        let listing = try JSONDecoder().decode(
                            NodeList.self, from: try await rawJSON(running, "/v1/nodes?parent=\(parentId)&trashed=true", token: aliceSession.token))
                        #expect(parentId != teamShare.nodeId || listing.nodes.contains { $0.trashedAt != nil }, "the bin's report.txt is listed")
                        #expect(listing.nodes.contains { $0.type == "file" }, "the folder holds the file added later")
                        #expect(!listing.nodes.contains { $0.previousKey != nil })
                        for node in listing.nodes {
                            #expect((try? NodeKeys.unwrap(WrappedKey(bytes: Base64URL.decode(node.wrappedKey)!), childId: node.id, parentId: parentId, under: oldKey)) == nil,
                                    "node \(node.id) still opens under the key bob had")
                        }
                    }
                    await #expect { _ = try await bob.list("@alice/Team", bobSession) } throws: { ($0 as? ClientError)?.code == .notFound }
                    // What was in the bin through the key change comes back under the new key.
                    _ = try await alice.restore("/Team/report.txt", aliceSession)
                    try await alice.download("/Team/report.txt", to: folder + "/restored.txt", aliceSession)
                    #expect(try String(contentsOfFile: folder + "/restored.txt", encoding: .utf8) == "quarterly figures")
                    let teamId = try #require(try await alice.list("/", aliceSession).first { $0.name == "Team" }?.id)
                    let direct = try await rawStatus(running, "GET", "/v1/nodes?parent=\(teamId)&owner=\(aliceSession.accountId)", token: bobSession.token)
                    #expect(direct == 404, "a former recipient asking by id gets \(direct)")

                    try await keyChangesAreCrashSafeAndRefuseStaleKeys(running, folder: folder, alice: alice, aliceSession, bobToken: bobSession.token)

                    // A share "from alice" sealed and signed by eve: bob's client refuses it.
                    _ = try await alice.share("/Team", with: "bob", write: false, aliceSession)
                    let eveIdentity = Identity(masterKey: try SecretKey(bytes: Base64URL.decode(eveSession.masterKey)!))
                    let bobKeys = Identity(masterKey: try SecretKey(bytes: Base64URL.decode(bobSession.masterKey)!)).publicIdentity
                    let forged = try UserShare.seal(
                        nodeKey: .random(), nodeId: teamId, from: eveIdentity, senderId: "alice", to: bobKeys, recipientId: "bob")
                    let status = try await rawStatus(
                        running, "POST", "/v1/shares", token: aliceSession.token,
                        json: CreateShareRequest(
                            nodeId: teamId, recipient: "bob", write: false,
                            sealed: SealedShareText(
                                encapsulatedKey: Base64URL.encode(forged.encapsulatedKey), ciphertext: Base64URL.encode(forged.ciphertext),
                                signature: Base64URL.encode(forged.signature))))
                    #expect(status == 201)
                    await #expect { _ = try await bob.shares(bobSession) } throws: { ($0 as? any CodedError)?.code == .signatureInvalid }

                    // The server swaps bob's public key for eve's, behind everyone's back: alice,
                    // who pinned bob's key, refuses to share with the substitute.
                    let coordinator = try running.cluster.names(.coordinator("IS"))
                    _ = try running.cluster.stop(coordinator)
                    do {
                        let store = try EmbeddedMetadataStore(path: running.cluster.folder + "/data/coordinator-is-metadata")
                        let bobId = String(decoding: try #require(try await store.get("usernames/bob")).value, as: UTF8.self)
                        let record = try #require(try await store.get("accounts/" + bobId))
                        var object = try #require(try JSONSerialization.jsonObject(with: Data(record.value)) as? [String: Any])
                        let eveKeys = eveIdentity.publicIdentity
                        object["keys"] = ["signingKey": Base64URL.encode(eveKeys.signingKey), "agreementKey": Base64URL.encode(eveKeys.agreementKey)]
                        _ = try await store.put("accounts/" + bobId, Array(try JSONSerialization.data(withJSONObject: object)))
                    }
                    try await running.cluster.start(coordinator)
                    let aliceAgain = try CoffreClient(profile: running.profile, contactsFile: folder + "/alice-contacts.json")
                    defer { Task { try? await aliceAgain.shutdown() } }
                    await #expect { _ = try await aliceAgain.share("/Team", with: "bob", write: true, aliceSession) } throws: {
                        let error = $0 as? ClientError
                        return error?.code == .signatureInvalid && error?.message.contains("other keys for bob") == true
                    }
                    #expect(try alice.contacts().first { $0.username == "bob" }?.keys.signingKey == Base64URL.encode(bobKeys.signingKey))
                }
            }
        }
    }
}

/// A key change cut short at each step is finished by the owner's next write that meets it;
/// the coordinator refuses writes into folders whose change is due or under way
/// (`key_changing`), writes under a key that has changed and re-wraps of a child that changed
/// (`key_changed`), and a finish while a child is under the previous key. A record that does
/// not decrypt, left by a recipient, neither hides the rest nor blocks the change for good.
private func keyChangesAreCrashSafeAndRefuseStaleKeys(
    _ running: RunningCluster, folder: String, alice: CoffreClient, _ session: Session, bobToken: String
) async throws {
    let file = folder + "/deep.txt"
    try Data("deep down".utf8).write(to: URL(fileURLWithPath: file))
    for path in ["/Deep", "/Deep/a", "/Deep/a/b"] { _ = try await alice.mkdir(path, session) }
    for path in ["/Deep/d.txt", "/Deep/a/a.txt", "/Deep/a/b/b.txt"] { _ = try await alice.upload(file, to: path, session) }
    _ = try await alice.share("/Deep", with: "bob", write: true, session)
    let deep = try await alice.locate("/Deep", session)
    let a = try await alice.locate("/Deep/a", session)
    let b = try await alice.locate("/Deep/a/b", session)
    let blob = Base64URL.encode([UInt8](repeating: 1, count: 61))
    func newFolder(in parent: String, generation: Int64?) -> CreateFolderRequest {
        CreateFolderRequest(
            id: Base64URL.encode((0..<16).map { _ in UInt8.random(in: 0...255) }), parent: parent, attributes: blob, wrappedKey: blob,
            nameTag: Base64URL.encode((0..<16).map { _ in UInt8.random(in: 0...255) }), parentKeyGeneration: generation)
    }
    func pending() async throws -> Set<String> {
        Set(try JSONDecoder().decode(PendingKeyChanges.self, from: try await rawJSON(running, "/v1/rekeys", token: session.token)).nodes)
    }

    // Bob, who may write, leaves a folder record that does not decrypt (a faulty or hostile
    // client): alice's listing shows the rest and names it; the strict `list` refuses.
    let junk = newFolder(in: deep.id, generation: nil)
    let planted = try await rawAnswer(running, "POST", "/v1/nodes?owner=\(session.accountId)", token: bobToken, json: junk)
    #expect(planted.status == 201, "\(planted)")
    let (entries, unreadable) = try await alice.listing("/Deep", session)
    #expect(entries.map(\.name) == ["a", "d.txt"] && unreadable == [junk.id])
    await #expect { _ = try await alice.list("/Deep", session) } throws: { ($0 as? ClientError)?.code == .decryptionFailed }

    // The share ends and alice's client stops right there: Deep and every folder below it are
    // due (listed for her client), and none takes a new name.
    #expect(try await rawAnswer(running, "DELETE", "/v1/shares/\(deep.id)/bob", token: session.token).status == 204)
    #expect(try await pending() == [deep.id, a.id, b.id, junk.id])
    for parent in [deep, a, b] {
        let answer = try await rawAnswer(running, "POST", "/v1/nodes", token: session.token, json: newFolder(in: parent.id, generation: nil))
        #expect(answer.code == "key_changing", "a new name in a folder whose key must change: \(answer)")
    }

    // Deep's change starts and stops before its children are re-wrapped: it cannot finish
    // with children under the previous key, nor start again; a child re-wrapped from a record
    // that is not the current one is refused.
    #expect(try await alice.changeKey(of: deep.id, shares: [], stopBefore: .children, session) == 0)
    let finish = try await rawAnswer(running, "DELETE", "/v1/nodes/\(deep.id)/rekey", token: session.token)
    #expect(finish.code == "key_changing", "finished with children under the previous key: \(finish)")
    let twice = try await rawAnswer(
        running, "POST", "/v1/nodes/\(deep.id)/rekey", token: session.token,
        json: RekeyFolderRequest(attributes: blob, wrappedKey: blob, previousKey: blob, shares: [], parent: "root", parentKeyGeneration: nil))
    #expect(twice.code == "key_changing", "a second change over an unfinished one: \(twice)")
    // (a.id's record as read before the change began: its wrapped key then.)
    let aWas = try #require(a.info?.wrappedKey)
    let tag3 = Base64URL.encode([UInt8](repeating: 3, count: 16))
    let moved = try await rawAnswer(
        running, "POST", "/v1/nodes/\(deep.id)/rekey/children", token: session.token,
        json: RekeyChildrenRequest(children: [.init(id: a.id, wrappedKey: blob, nameTag: tag3, wrappedKeyWas: blob)], keyGeneration: 1))
    #expect(moved.code == "key_changed", "a re-wrap of a record that is not the child's: \(moved)")
    let oldGeneration = try await rawAnswer(
        running, "POST", "/v1/nodes/\(deep.id)/rekey/children", token: session.token,
        json: RekeyChildrenRequest(children: [.init(id: a.id, wrappedKey: blob, nameTag: tag3, wrappedKeyWas: aWas)], keyGeneration: 0))
    #expect(oldGeneration.code == "key_changed", "a re-wrap under a generation that is not the folder's: \(oldGeneration)")
    let notStarted = try await rawAnswer(running, "DELETE", "/v1/nodes/\(a.id)/rekey", token: session.token)
    #expect(notStarted.code == "key_changing", "a finish of a due change never started: \(notStarted)")

    // The record bob left cannot be re-wrapped, so Deep's change cannot finish: the client
    // says which node, and it goes by id (it has no name to give).
    await #expect { _ = try await alice.finishKeyChanges(session) } throws: {
        ($0 as? ClientError)?.code == .decryptionFailed && ($0 as? ClientError)?.message.contains(junk.id) == true
    }
    try await alice.removeNode(id: junk.id, recursive: false, permanent: true, session)

    // Alice's next write meets it: her client finishes every change (Deep, then a, then b)
    // and writes. Nothing in the three folders opens under the keys bob had.
    _ = try await alice.upload(file, to: "/Deep/a/b/later.txt", session)
    #expect(try await pending().isEmpty)
    #expect(try await alice.list("/Deep/a/b", session).map(\.name) == ["b.txt", "later.txt"])
    try await alice.download("/Deep/a/a.txt", to: folder + "/deep-back.txt", session)
    #expect(try String(contentsOfFile: folder + "/deep-back.txt", encoding: .utf8) == "deep down")
    for old in [deep, a, b] {
        let listing = try JSONDecoder().decode(NodeList.self, from: try await rawJSON(running, "/v1/nodes?parent=\(old.id)", token: session.token))
        #expect(listing.nodes.count == 2)
        for node in listing.nodes {
            #expect(node.parentKeyGeneration == 1 && node.keyPending == nil && node.previousKey == nil, "\(node)")
            #expect((try? NodeKeys.unwrap(WrappedKey(bytes: Base64URL.decode(node.wrappedKey)!), childId: node.id, parentId: old.id, under: old.key)) == nil,
                    "node \(node.id) still opens under the key bob had")
        }
    }

    // Writes under the key read before the change are refused, not stored under a dead key:
    // a new folder, an upload (before its body is read), a move in.
    let late = try await rawAnswer(running, "POST", "/v1/nodes", token: session.token, json: newFolder(in: deep.id, generation: nil))
    #expect(late.code == "key_changed", "a new name under Deep's previous key: \(late)")
    let lateUpload = try await rawAnswer(
        running, "PUT", "/v1/nodes/\(Base64URL.encode([UInt8](repeating: 9, count: 16)))/content", token: session.token,
        headers: [
            "x-coffre-parent: \(deep.id)", "x-coffre-attributes: \(blob)", "x-coffre-wrapped-key: \(blob)", "x-coffre-file-key: \(blob)",
            "x-coffre-name-tag: \(tag3)", "x-coffre-parent-key-generation: 0",
        ], data: "ciphertext")
    #expect(lateUpload.code == "key_changed", "an upload under Deep's previous key: \(lateUpload)")
    let file2 = try await alice.list("/", session).first { $0.name == "Private" }
    let lateMove = try await rawAnswer(
        running, "PATCH", "/v1/nodes/\(try #require(file2).id)", token: session.token,
        json: UpdateNodeRequest(parent: deep.id, attributes: nil, wrappedKey: blob, nameTag: tag3, parentKeyGeneration: nil))
    #expect(lateMove.code == "key_changed", "a move into Deep under its previous key: \(lateMove)")

    // A change cut short after its children, before its finish: `coffre rekey` (no path) ends it.
    // It was asked for with no share ending (`rekey PATH`): its sub-folder b is due only once
    // re-wrapped; moved out before, b is made due where it lands (its key was under a's old one).
    #expect(try await alice.changeKey(of: a.id, shares: [], stopBefore: .children, session) == 0)
    #expect(try await pending() == [a.id])
    let bMoved = try await alice.move("/Deep/a/b", to: "/b", session)
    let out = try JSONDecoder().decode(TreeNodeInfo.self, from: try await rawJSON(running, "/v1/nodes/\(bMoved.id)", token: session.token))
    #expect(out.keyPending == true, "a folder moved out of one whose key is changing is due: \(out)")
    #expect(try await pending() == [a.id, bMoved.id])
    #expect(try await alice.finishKeyChanges(session) == 2)
    #expect(try await pending().isEmpty)
    #expect(try await alice.list("/Deep/a", session).map(\.name) == ["a.txt"])
    try await alice.remove("/b", recursive: true, session)

    // Two shares end one after the other while the first change runs: the key sealed to the
    // second recipient in that change is changed again.
    _ = try await alice.mkdir("/Two", session)
    _ = try await alice.share("/Two", with: "bob", write: false, session)
    _ = try await alice.share("/Two", with: "carol", write: false, session)
    let two = try await alice.locate("/Two", session)
    #expect(try await rawAnswer(running, "DELETE", "/v1/shares/\(two.id)/bob", token: session.token).status == 204)
    let shares = try await outgoingShares(running, session)
    #expect(try await alice.changeKey(of: two.id, shares: shares, stopBefore: .children, session) == 0)
    let sealedToCarol = try await alice.locate("/Two", session).key
    #expect(try await rawAnswer(running, "DELETE", "/v1/shares/\(two.id)/carol", token: session.token).status == 204)
    let both = try JSONDecoder().decode(TreeNodeInfo.self, from: try await rawJSON(running, "/v1/nodes/\(two.id)", token: session.token))
    #expect(both.previousKey != nil && both.keyPending == true, "started, and due again: \(both)")
    #expect(try await alice.finishKeyChanges(session) == 2)
    let final = try await alice.locate("/Two", session)
    #expect(final.info?.keyGeneration == 2 && final.key != sealedToCarol && final.key != two.key)
    #expect(try await pending().isEmpty)
    try await alice.remove("/Two", recursive: true, session)
    try await alice.remove("/Deep", recursive: true, session)
}

/// This account's outgoing shares as the coordinator lists them.
private func outgoingShares(_ running: RunningCluster, _ session: Session) async throws -> [ShareInfo] {
    try JSONDecoder().decode(ShareList.self, from: try await rawJSON(running, "/v1/shares", token: session.token)).outgoing
}

/// The status and error code of a request made as a raw client would.
func rawAnswer(
    _ running: RunningCluster, _ method: String, _ path: String, token: String, json: (any Encodable)? = nil, headers: [String] = [], data: String? = nil
) async throws -> (status: Int, code: String?) {
    let url = running.profile.coordinators[0].url + path
    var arguments = ["-sk", "-w", "\n%{http_code}", "-X", method, "-H", "authorization: Bearer " + token, url]
    for header in headers { arguments += ["-H", header] }
    if let data { arguments += ["--data-binary", data] }
    if let json {
        arguments += ["-H", "content-type: application/json", "--data-binary", String(decoding: try JSONEncoder().encode(json), as: UTF8.self)]
    }
    let (status, output) = try await runProcessInBackground("curl", arguments)
    let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    guard status == 0, let last = lines.last, let code = Int(last.trimmingCharacters(in: .whitespaces)) else { throw LocalClusterError("curl failed: \(output)") }
    let body = lines.dropLast().joined(separator: "\n")
    return (code, (try? JSONDecoder().decode(APIErrorBody.self, from: Data(body.utf8)))?.error.code)
}

/// The body of a GET made as a raw client would.
private func rawJSON(_ running: RunningCluster, _ path: String, token: String) async throws -> Data {
    let (status, output) = try await runProcessInBackground(
        "curl", ["-sk", "--fail-with-body", "-H", "authorization: Bearer " + token, running.profile.coordinators[0].url + path])
    guard status == 0 else { throw LocalClusterError("curl \(path) failed: \(output)") }
    return Data(output.utf8)
}

/// The status of a request made as a raw client would (no client-side checks).
private func rawStatus(_ running: RunningCluster, _ method: String, _ path: String, token: String, json: (any Encodable)? = nil) async throws -> Int {
    let url = running.profile.coordinators[0].url + path
    var arguments = ["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "-H", "authorization: Bearer " + token, url]
    if let json {
        arguments += ["-H", "content-type: application/json", "--data-binary", String(decoding: try JSONEncoder().encode(json), as: UTF8.self)]
    }
    let (status, output) = try await runProcessInBackground("curl", arguments)
    guard status == 0, let code = Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw LocalClusterError("curl failed: \(output)") }
    return code
}
