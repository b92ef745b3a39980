@testable import CoffreClient
import CoffreAPI
import CoffreModel
import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// The rubbish bin on a real cluster (4 countries, etcd), with a 20 s retention: `rm` hides
    /// a file from listings and links and frees its name while it still counts to the quota;
    /// `restore` brings it back (refused while another holds its name); a folder goes with what
    /// is below it; the leader purges what is past the retention, and its shards are deleted;
    /// `bin empty` and `rm --permanent` delete at once; bad input gets stable codes.
    @Suite(.serialized, .timeLimit(.minutes(6))) struct RubbishBinTests {
        @Test func removedFilesAreHiddenRestoredAndPurgedAfterTheRetention() async throws {
            var topology = healingTopology("bin")
            topology.binRetentionSeconds = 20
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder, topology: topology)
                await running.run { running in
                    let de = try running.client(via: "DE")
                    let session = try await newAccount(de, "rita")
                    var stored = StoredFiles()
                    _ = try await de.mkdir("/docs", session)
                    try await stored.upload(de, session, folder: folder, sizes: [300_000, 2 << 20, 1000], seed: 5, prefix: "f")
                    _ = try await de.move("/f-0", to: "/docs/a", session)
                    _ = try await de.move("/f-1", to: "/docs/b", session)
                    let (fileURL, _) = try await de.createLink("/docs/a", session)
                    let (folderURL, _) = try await de.createLink("/docs", session)
                    let visitor = running.track(try CoffreClient.forLink(fileURL, profile: running.profile, via: "FR"))
                    let used = try await de.whoami(session).usedBytes

                    // rm: into the bin. Hidden from the folder, the file link and the folder
                    // link; still counted; its name free.
                    let entry = try #require(try await de.remove("/docs/a", recursive: false, session))
                    #expect(entry.purgeAt - (entry.node.trashedAt ?? 0) == 20_000)
                    #expect(try await de.list("/docs", session).map(\.name) == ["b"])
                    let bin = try await de.bin(session)
                    #expect(bin.map(\.path) == ["/docs/a"] && bin.first?.size == 300_000 && bin.first?.type == "file")
                    await #expect { _ = try await visitor.readLink(fileURL, range: 0..<10) } throws: { ($0 as? ClientError)?.code == .notFound }
                    #expect(try await visitor.listLink(folderURL).map(\.name) == ["b"])
                    #expect(try await de.whoami(session).usedBytes == used, "what is in the bin counts")

                    // Another file takes the name: the restore is refused until it goes.
                    try Data("newer".utf8).write(to: URL(fileURLWithPath: folder + "/newer"))
                    _ = try await de.upload(folder + "/newer", to: "/docs/a", session)
                    await #expect { _ = try await de.restore("/docs/a", session) } throws: { ($0 as? ClientError)?.code == .nameTaken }
                    try await de.remove("/docs/a", recursive: false, permanent: true, session)
                    #expect(try await de.bin(session).map(\.path) == ["/docs/a"], "the permanent delete went past the bin")
                    let back = try await de.restore("/docs/a", session)
                    #expect(back.id == entry.node.id)
                    #expect(try await de.list("/docs", session).map(\.name) == ["a", "b"])
                    #expect(try await visitor.readLink(fileURL, range: 0..<300_000) == stored.files[0].bytes)
                    #expect(try await de.bin(session).isEmpty)

                    // A folder: refused without --recursive; with it, all below goes (links to what
                    // is below it too) and comes back. An entry below it waits for it.
                    await #expect { _ = try await de.remove("/docs", recursive: false, session) } throws: { ($0 as? ClientError)?.code == .conflict }
                    let bEntry = try #require(try await de.remove("/docs/b", recursive: false, session))
                    try await de.remove("/docs", recursive: true, session)
                    #expect(try await de.list("/", session).map(\.name) == ["f-2"])
                    #expect(try await de.bin(session).map(\.path) == ["/docs", "/docs/b"])
                    await #expect { _ = try await visitor.readLink(fileURL, range: 0..<10) } throws: { ($0 as? ClientError)?.code == .notFound }
                    await #expect { _ = try await de.restore("/docs/a", session) } throws: { ($0 as? ClientError)?.code == .notFound }
                    await #expect { _ = try await de.restore(bEntry.node.id, byId: true, session) } throws: { ($0 as? ClientError)?.code == .conflict }
                    _ = try await de.restore("/docs", session)
                    _ = try await de.restore("/docs/b", session)
                    #expect(try await de.list("/docs", session).map(\.name) == ["a", "b"])
                    #expect(try await visitor.readLink(fileURL, range: 0..<10) == Array(stored.files[0].bytes[0..<10]))

                    // Bad input: stable codes, nothing changed.
                    let docs = try await de.locate("/docs", session)
                    #expect(try await rawAnswer(running, "POST", "/v1/nodes/root/trash", token: session.token) == (400, "invalid_argument"))
                    #expect(try await rawAnswer(running, "POST", "/v1/nodes/\(docs.id)/restore", token: session.token) == (409, "conflict"))
                    #expect(try await rawAnswer(running, "POST", "/v1/nodes/AAAAAAAAAAAAAAAAAAAAAA/trash", token: session.token) == (404, "not_found"))
                    #expect(try await rawAnswer(running, "GET", "/v1/bin?after=%2F..", token: session.token) == (400, "invalid_argument"))
                    #expect(try await rawAnswer(running, "DELETE", "/v1/bin", token: "nobody") == (401, "unauthenticated"))
                    #expect(try await de.list("/docs", session).map(\.name) == ["a", "b"])

                    // The leader purges /docs/b once 20 s passed: its bytes leave the quota,
                    // its manifest goes, and every node holds only what manifests reference.
                    let b = try #require(try await de.list("/docs", session).first { $0.name == "b" }?.objectId)
                    let beforePurge = try await de.whoami(session).usedBytes
                    try await de.remove("/docs/b", recursive: false, session)
                    try await awaitCondition("the leader purged /docs/b", seconds: 90) { try await de.bin(session).isEmpty }
                    #expect(try await de.whoami(session).usedBytes < beforePurge)
                    await #expect { _ = try await de.adminObject(b) } throws: { ($0 as? ClientError)?.code == .notFound }
                    try await awaitCondition("the collector's status shows the purge", seconds: 30) {
                        (try await de.adminCollectorStatus().binPurge?.entries ?? 0) >= 1
                    }
                    stored.files.remove(at: 1)
                    stored.files[0].path = "/docs/a"
                    try await awaitCondition("the purged file's shards are deleted", seconds: 90) {
                        let (held, referenced) = try await storedAndReferenced(de, try await stored.manifests(de, session))
                        return held == referenced
                    }

                    // bin empty: at once.
                    try await de.remove("/f-2", recursive: false, session)
                    let emptied = try await de.emptyBin(session)
                    #expect(emptied.nodes == 1 && emptied.bytes > 0)
                    #expect(try await de.bin(session).isEmpty)
                    #expect(try await de.list("/", session).map(\.name) == ["docs"])
                }
            }
        }
    }
}
