import AsyncHTTPClient
import ClusterTLS
import CoffreAPI
import CoffreClient
import CoffreModel
import Encryption
import Foundation
import LocalCluster

#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import Testing
import TestSupport

/// A whole cluster as people run it — 3 etcd members, 4 coordinators and 12 storage nodes
/// in 4 countries, real processes on loopback, started by the same launcher as Cluster/up —
/// driven through the client library as a user would.
final class RunningCluster: @unchecked Sendable {
    static let segmentSize = 4 << 20
    static let quota: Int64 = 100 << 20

    let cluster: LocalCluster
    let profile: Profile
    let folder: String

    init(folder: String, topology custom: ClusterTopologyFile? = nil) async throws {
        self.folder = folder
        let topology = custom ?? ClusterTopologyFile(
            name: "it",
            countries: [
                .init(code: "FR", region: "fr-paris", nodes: 3, capacityBytes: 4 << 30),
                .init(code: "DE", region: "de-frankfurt", nodes: 3, capacityBytes: 4 << 30),
                .init(code: "CH", region: "ch-zurich", nodes: 3, capacityBytes: 4 << 30),
                .init(code: "NZ", region: "nz-auckland", nodes: 3, capacityBytes: 4 << 30),
            ],
            etcdCountries: ["FR", "DE", "CH"], policy: .init(k: 6, m: 3, margin: 0), segmentSizeBytes: Self.segmentSize,
            quotaBytesDefault: Self.quota, basePort: freePortBlock(count: 6), downAfterSeconds: 4)
        let binaries = (builtExecutable("coffred") as NSString).deletingLastPathComponent
        cluster = LocalCluster(topology: topology, runDirectory: folder, binaries: binaries)
        profile = try await cluster.up(saveProfile: false)
    }

    private var clients: [CoffreClient] = []
    private let lock = NSLock()

    /// A client of this cluster, shut down by `stop()`.
    func client(via country: String? = nil) throws -> CoffreClient {
        try track(CoffreClient(profile: profile, via: country))
    }

    func track(_ client: CoffreClient) -> CoffreClient {
        lock.lock()
        defer { lock.unlock() }
        clients.append(client)
        return client
    }

    /// Runs a test body; whatever it throws is recorded, and the clients and the cluster are
    /// stopped either way (a client dropped without shutdown would crash the test process).
    func run(_ body: (RunningCluster) async throws -> Void) async {
        do {
            try await body(self)
        } catch {
            Issue.record("\(error)")
            try? FileManager.default.copyItem(atPath: cluster.folder + "/logs", toPath: "/tmp/failed-logs-\(UUID().uuidString)")
        }
        let all = lock.withLock { clients }
        for client in all { try? await client.shutdown() }
        _ = try? cluster.down()
    }

    /// Every byte under the run folder's data (nodes' shard stores, etcd members' data).
    func storedFiles() -> [String] {
        let root = cluster.folder + "/data"
        let enumerator = FileManager.default.enumerator(atPath: root)!
        var files: [String] = []
        while let name = enumerator.nextObject() as? String {
            var folder: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + name, isDirectory: &folder), !folder.boolValue { files.append(root + "/" + name) }
        }
        return files
    }
}

func write(_ bytes: [UInt8], to path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

/// Plaintext length whose ciphertext is exactly `size` bytes, if any.
func plaintextLength(forCiphertext size: Int) -> Int? {
    FileFormat.plaintextLength(ciphertextLength: UInt64(size)).map(Int.init)
}

extension RealClusters {
    @Suite(.serialized, .timeLimit(.minutes(10))) struct ClusterIntegrationTests {
        @Test func uploadInOneCountryDownloadInAnotherShareAndKeepSecrets() async throws {
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder)
                await running.run { running in
                let started = ContinuousClock.now
                func phase(_ name: String) { print("[integration \(ContinuousClock.now - started)] \(name)") }
                let fr = try running.client(via: "FR")
                let nz = try running.client(via: "NZ")
                let de = try running.client(via: "DE")
                let password = "a long and unusual passphrase 7F3A"
                _ = try await fr.register(username: "alice", password: password, parameters: .minimum)
                let session = try await fr.login(username: "alice", password: password)
                _ = try await fr.mkdir("/Secret Projects", session)

                // 64 MiB of random data through France, back through New Zealand, bit-exact.
                var random = SeededGenerator(seed: 64)
                let big = random.bytes(64 << 20)
                try write(big, to: folder + "/big.bin")
                let entry = try await fr.upload(folder + "/big.bin", to: "/Secret Projects/Quarterly Ledger 2026.bin", session)
                try await nz.download("/Secret Projects/Quarterly Ledger 2026.bin", to: folder + "/big.out", session)
                #expect(try read(folder + "/big.out") == big)
                phase("64 MiB up and down")

                // etcd speaks TLS and serves only certificates of its own CA, which only
                // coordinators hold: none, or a storage node's, is refused at the handshake.
                let certs = running.cluster.folder + "/certs"
                let config = try String(contentsOfFile: running.cluster.folder + "/config/coordinator-fr.yaml", encoding: .utf8)
                let endpoint = try #require(config.split(separator: "\n").first { $0.contains("- https://127.0.0.1:") }?.split(separator: " ").last)
                func etcdHealth(_ credentials: [String]) async throws -> Int32 {
                    try await runProcessInBackground("curl", ["-s", "-m", "5", "--cacert", certs + "/etcd/ca.pem"] + credentials + [endpoint + "/health"]).status
                }
                #expect(try await etcdHealth([]) != 0, "etcd refuses a client with no certificate")
                #expect(try await etcdHealth(["--cert", certs + "/node-fr-1.pem", "--key", certs + "/node-fr-1-key.pem"]) != 0, "and a node's")
                #expect(try await etcdHealth(["--cert", certs + "/etcd/client-coordinator-fr.pem", "--key", certs + "/etcd/client-coordinator-fr-key.pem"]) == 0)
                phase("etcd refuses all but coordinators")

                // Range reads, through Germany.
                for range in [UInt64(0)..<1, 65_535..<65_537, 10_000_000..<10_300_000, UInt64(big.count - 5)..<UInt64(big.count)] {
                    #expect(try await de.read("/Secret Projects/Quarterly Ledger 2026.bin", range: range, session) == Array(big[Int(range.lowerBound)..<Int(range.upperBound)]))
                }

                // Edge sizes: empty, one byte, exactly one segment of ciphertext, one byte over.
                let exact = try #require(plaintextLength(forCiphertext: RunningCluster.segmentSize))
                for size in [0, 1, exact, exact + 1] {
                    let bytes = random.bytes(size)
                    try write(bytes, to: folder + "/edge-\(size)")
                    _ = try await fr.upload(folder + "/edge-\(size)", to: "/edge-\(size)", session)
                    try await nz.download("/edge-\(size)", to: folder + "/edge-\(size).out", session)
                    #expect(try read(folder + "/edge-\(size).out") == bytes, "size \(size)")
                }
                let segments = try await fr.adminObject(try #require(try await fr.list("/edge-\(exact)", session).first?.objectId)).segments
                #expect(segments.count == 1)
                #expect(try await fr.adminObject(try #require(try await fr.list("/edge-\(exact + 1)", session).first?.objectId)).segments.count == 2)

                // Placement: every segment on 9 distinct nodes, at most m - margin = 3 per country.
                let manifest = try await fr.adminObject(try #require(entry.objectId))
                #expect(manifest.segments.count == 17)
                for segment in manifest.segments {
                    #expect(Set(segment.shards.map(\.node)).count == 9)
                    let perCountry = Dictionary(grouping: segment.shards, by: { String($0.node.value.prefix(2)) }).mapValues(\.count)
                    #expect(perCountry.values.allSatisfy { $0 <= 3 }, "segment \(segment.index): \(perCountry)")
                }

                // A share link works with no account, through another country; revoking ends it.
                let (url, linkId) = try await fr.createLink("/Secret Projects/Quarterly Ledger 2026.bin", session)
                let stranger = try running.client(via: "CH")
                let (name, _) = try await stranger.downloadLink(url, to: folder + "/via-link.bin")
                #expect(name == "Quarterly Ledger 2026.bin")
                #expect(try read(folder + "/via-link.bin") == big)
                // Ranges through the link: the first byte, across a chunk boundary, the tail.
                let size = UInt64(big.count)
                for range in [0..<1, 65_530..<65_600, (size - 10)..<size] {
                    #expect(try await stranger.readLink(url, range: range) == Array(big[Int(range.lowerBound)..<Int(range.upperBound)]))
                }
                await #expect { _ = try await stranger.readLink(url, range: 0..<(size + 1)) } throws: {
                    ($0 as? ClientError)?.code == .invalidArgument
                }

                phase("edges, placement, link")
                // Confidentiality: nothing the nodes or etcd hold contains plaintext, a name, a key,
                // the link secret or the password.
                let parsed = try ShareLink.parse(url)
                var secrets: [(String, [UInt8])] = [
                    ("file name", Array("Quarterly Ledger".utf8)), ("folder name", Array("Secret Projects".utf8)),
                    ("password", Array(password.utf8)), ("link secret", parsed.secret),
                    ("link secret (text)", Array(url.split(separator: "#")[1].utf8)),
                    ("master key", try #require(Base64URL.decode(session.masterKey))),
                ]
                for offset in stride(from: 0, to: big.count, by: big.count / 16) {
                    secrets.append(("plaintext at \(offset)", Array(big[offset..<(offset + 32)])))
                }
                var scanned = 0
                for file in running.storedFiles() {
                    let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
                    scanned += bytes.count
                    for (what, secret) in secrets {
                        #expect(!contains(bytes, secret), "\(what) found in \(file)")
                    }
                }
                #expect(scanned > 64 << 20, "the scan covered the shards (\(scanned) bytes)")
                phase("scanned \(scanned) bytes")

                try await fr.revokeLink(linkId, session)
                await #expect { _ = try await stranger.downloadLink(url, to: folder + "/revoked.bin") } throws: { ($0 as? ClientError)?.code == .notFound }

                // Move, rename and delete; usage follows.
                _ = try await de.move("/Secret Projects/Quarterly Ledger 2026.bin", to: "/ledger.bin", session)
                #expect(try await nz.list("/", session).map(\.name).contains("ledger.bin"))
                let before = try await fr.whoami(session).usedBytes
                try await fr.remove("/ledger.bin", recursive: false, permanent: true, session)
                #expect(try await fr.whoami(session).usedBytes < before)
                }
            }
        }

        @Test func outagesFailoverAndBadInput() async throws {
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder)
                await running.run { running in
                let fr = try running.client(via: "FR")
                _ = try await fr.register(username: "bob", password: "pw for bob", parameters: .minimum)
                let session = try await fr.login(username: "bob", password: "pw for bob")
                var random = SeededGenerator(seed: 5)
                let bytes = random.bytes(9 << 20)
                try write(bytes, to: folder + "/file")
                _ = try await fr.upload(folder + "/file", to: "/file", session)

                // A whole country's storage nodes die (kill -9): reads go on by decoding.
                for n in 1...3 { try running.cluster.kill9("node de-\(n)") }
                let nz = try running.client(via: "NZ")
                try await nz.download("/file", to: folder + "/file.out", session)
                #expect(try read(folder + "/file.out") == bytes)

                // A coordinator dies: a client without --via fails over to the next region.
                try running.cluster.kill9("coordinator FR")
                let any = try running.client()
                #expect(any.endpoints.first == running.profile.coordinators.first { $0.country == "FR" }?.url)
                try await any.download("/file", to: folder + "/file.2", session)
                #expect(try read(folder + "/file.2") == bytes)

                // A client refuses a coordinator whose certificate does not chain to its CA.
                let stranger = try CertificateAuthority.create(name: "Someone else")
                try stranger.write(to: folder + "/other-ca")
                var wrongCA = running.profile
                wrongCA.ca = folder + "/other-ca/ca.pem"
                let doubtful = running.track(try CoffreClient(profile: wrongCA, via: "NZ"))
                await #expect { _ = try await doubtful.whoami(session) } throws: { ($0 as? ClientError)?.code == .unavailable }

                // Bad input: each gets its code, the coordinator keeps serving.
                let base = try #require(running.profile.coordinators.first { $0.country == "CH" }?.url)
                var configuration = HTTPClient.Configuration(tlsConfiguration: try TLSSetup.client(ca: running.profile.ca))
                configuration.httpVersion = .automatic
                let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
                func call(_ method: HTTPMethod, _ path: String, token: String? = nil, body: String? = nil, headers: [(String, String)] = []) async throws -> (UInt, String) {
                    var request = HTTPClientRequest(url: base + path)
                    request.method = method
                    if let token { request.headers.add(name: "authorization", value: "Bearer " + token) }
                    for (name, value) in headers { request.headers.add(name: name, value: value) }
                    if let body { request.body = .bytes(ByteBuffer(string: body)) }
                    let response = try await http.execute(request, timeout: .seconds(20))
                    return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
                }
                let nodeId = Base64URL.encode([UInt8](repeating: 7, count: 16))
                let cases: [(HTTPMethod, String, String?, String?, [(String, String)], UInt, String)] = [
                    (.POST, "/v1/accounts", nil, "{not json", [], 400, "invalid_argument"),
                    (.POST, "/v1/accounts", nil, #"{"username": 5}"#, [], 400, "invalid_argument"),
                    (.POST, "/v1/sessions", nil, #"{"username":"bob","authKey":"AAAA"}"#, [], 400, "invalid_argument"),
                    (.POST, "/v1/sessions", nil, #"{"username":"bob","authKey":"\#(Base64URL.encode([UInt8](repeating: 1, count: 32)))"}"#, [], 401, "unauthenticated"),
                    (.GET, "/v1/whoami", "forged-token", nil, [], 401, "unauthenticated"),
                    (.GET, "/v1/whoami", nil, nil, [], 401, "unauthenticated"),
                    (.GET, "/v1/no/such/path", nil, nil, [], 404, "not_found"),
                    (.GET, "/v1/nodes/\(nodeId)", session.token, nil, [], 404, "not_found"),
                    (.GET, "/v1/nodes/not-an-id!", session.token, nil, [], 400, "invalid_argument"),
                    (.POST, "/v1/nodes", session.token, #"{"id":"\#(nodeId)","parent":"root","attributes":"!!","wrappedKey":"AA"}"#, [], 400, "invalid_argument"),
                    (.GET, "/v1/admin/status", session.token, nil, [], 401, "unauthenticated"),
                    (.GET, "/v1/l/unknown-link", nil, nil, [], 404, "not_found"),
                    (.GET, "/v1/nodes?parent=root&name=short", session.token, nil, [], 400, "invalid_argument"),
                    (.PUT, "/v1/nodes/\(nodeId)/content", session.token, "x", [(ContentHeaders.parent, "root"), (ContentHeaders.attributes, "AAAA"),
                        (ContentHeaders.wrappedKey, "AAAA"), (ContentHeaders.fileKey, "AAAA")], 400, "invalid_argument"),
                ]
                for (method, path, token, body, headers, status, code) in cases {
                    let (actual, text) = try await call(method, path, token: token, body: body, headers: headers)
                    #expect(actual == status, "\(method) \(path): \(text)")
                    #expect(text.contains("\"code\":\"\(code)\""), "\(method) \(path): \(text)")
                }

                // Over quota: refused before the body is read, and nothing becomes visible.
                let tag = Base64URL.encode([UInt8](repeating: 7, count: 16))
                let upload: [(String, String)] = [
                    (ContentHeaders.parent, "root"), (ContentHeaders.attributes, "AAAA"), (ContentHeaders.wrappedKey, "AAAA"),
                    (ContentHeaders.fileKey, "AAAA"), (ContentHeaders.nameTag, tag), ("content-length", String(RunningCluster.quota + 1)),
                ]
                // The coordinator refuses it by its declared length (and the client checks first).
                let used = try await any.whoami(session).usedBytes
                var overQuota = HTTPClientRequest(url: base + "/v1/nodes/\(nodeId)/content")
                overQuota.method = .PUT
                overQuota.headers.add(name: "authorization", value: "Bearer " + session.token)
                for (name, value) in upload where name != "content-length" { overQuota.headers.add(name: name, value: value) }
                overQuota.body = .bytes(ByteBuffer(repeating: 0, count: Int(RunningCluster.quota + 1)))
                let refused = try await http.execute(overQuota, timeout: .seconds(60))
                #expect(refused.status.code == 507)
                #expect(String(buffer: try await refused.body.collect(upTo: 1 << 20)).contains("quota_exceeded"))
                let tooBig = [UInt8](repeating: 0x5a, count: Int(RunningCluster.quota - used))
                try write(tooBig, to: folder + "/too-big")
                await #expect { _ = try await any.upload(folder + "/too-big", to: "/too-big", session) } throws: {
                    ($0 as? ClientError)?.code == .quotaExceeded
                }
                #expect(try await any.whoami(session).usedBytes == used, "usage unchanged")
                #expect(try await any.list("/", session).map(\.name) == ["file"], "no partial file is visible")
                // No declared length (chunked) and over quota: refused part-way through the body,
                // which is drained so that the client gets the answer, not a stalled upload.
                try write([UInt8](repeating: 0x33, count: Int(RunningCluster.quota - used) + (1 << 20)), to: folder + "/chunked")
                let chunked = try runProcess("curl", [
                    "-s", "-m", "60", "--http1.1", "--cacert", running.profile.ca, "-X", "PUT", base + "/v1/nodes/\(nodeId)/content",
                    "-H", "authorization: Bearer \(session.token)", "-H", "\(ContentHeaders.parent): root",
                    "-H", "\(ContentHeaders.attributes): AAAA", "-H", "\(ContentHeaders.wrappedKey): AAAA", "-H", "\(ContentHeaders.fileKey): AAAA",
                    "-H", "\(ContentHeaders.nameTag): \(tag)", "-H", "transfer-encoding: chunked", "--data-binary", "@" + folder + "/chunked",
                ])
                #expect(chunked.output.contains("quota_exceeded"), "chunked over quota: \(chunked.output)")
                #expect(try await any.whoami(session).usedBytes == used, "usage unchanged")
                // A body shorter than declared: the upload fails, nothing is committed.
                let short = try runProcess("curl", [
                    "-s", "-m", "5", "--cacert", running.profile.ca, "-X", "PUT", base + "/v1/nodes/\(nodeId)/content",
                    "-H", "authorization: Bearer \(session.token)", "-H", "\(ContentHeaders.parent): root",
                    "-H", "\(ContentHeaders.attributes): AAAA", "-H", "\(ContentHeaders.wrappedKey): AAAA", "-H", "\(ContentHeaders.fileKey): AAAA",
                    "-H", "\(ContentHeaders.nameTag): \(tag)", "-H", "content-length: 1000", "--data-binary", "only a few bytes",
                ])
                _ = short
                // A body longer than declared: HTTP/1.1 takes the declared bytes as the body and the
                // rest as a malformed next request; the coordinator refuses that and keeps serving.
                let longId = Base64URL.encode([UInt8](repeating: 9, count: 16))
                let long = try runProcess("curl", [
                    "-s", "--http1.1", "-m", "10", "--cacert", running.profile.ca, "-X", "PUT", base + "/v1/nodes/\(longId)/content",
                    "-H", "authorization: Bearer \(session.token)", "-H", "\(ContentHeaders.parent): root",
                    "-H", "\(ContentHeaders.attributes): AAAA", "-H", "\(ContentHeaders.wrappedKey): AAAA", "-H", "\(ContentHeaders.fileKey): AAAA",
                    "-H", "\(ContentHeaders.nameTag): \(tag)", "-H", "content-length: 4", "--data-binary", "four bytes and then many more that nobody declared",
                ])
                _ = long
                let (afterStatus, _) = try await call(.GET, "/v1/nodes/\(nodeId)", token: session.token)
                #expect(afterStatus == 404, "no partial object is visible")
                let (healthStatus, _) = try await call(.GET, "/v1/whoami", token: session.token)
                #expect(healthStatus == 200, "the coordinator keeps serving")
                try await http.shutdown()
                }
            }
        }
    }
}

/// One country of three nodes, embedded metadata (no etcd), RS(2,1), 1 MiB segments.
func smallTopology(_ name: String, sessionLifetimeSeconds: Int? = nil) -> ClusterTopologyFile {
    var topology = ClusterTopologyFile(
        name: name, countries: [.init(code: "IS", region: "is-reykjavik", nodes: 3, capacityBytes: 1 << 30)],
        etcdCountries: [], policy: .init(k: 2, m: 1, margin: 0), segmentSizeBytes: 1 << 20, quotaBytesDefault: 1 << 30,
        basePort: 0, downAfterSeconds: 4)
    if let sessionLifetimeSeconds { topology.sessionLifetimeSeconds = sessionLifetimeSeconds }
    return topology
}

extension RealClusters {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct SessionAndProtocolTests {
        @Test func expiredTokensAndOversizedHeadersAreRefused() async throws {
            try await withTemporaryDirectory { folder in
                // Short sessions (long enough that a loaded machine gets from a login to its first
                // request within one).
                let running = try await RunningCluster(folder: folder, topology: smallTopology("small", sessionLifetimeSeconds: 30))
                await running.run { running in
                let client = try running.client()
                _ = try await client.register(username: "carol", password: "pw", parameters: .minimum)
                let session = try await client.login(username: "carol", password: "pw")
                #expect(try await client.whoami(session).username == "carol")
                let expired = try await awaitCondition(timeout: .seconds(120)) {
                    do {
                        _ = try await client.whoami(session)
                        return false
                    } catch let error as ClientError {
                        return error.code == .unauthenticated
                    }
                }
                #expect(expired, "a token stops working when its session expires")

                // A request with 100 KB of headers is refused; the coordinator keeps serving.
                let base = running.profile.coordinators[0].url
                let huge = String(repeating: "x", count: 100_000)
                let result = try runProcess("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10", "--cacert", running.profile.ca, "-H", "x-big: \(huge)", base + "/v1/whoami"])
                #expect(!result.output.hasPrefix("2"), "oversized headers: \(result.output)")
                let fresh = try await client.login(username: "carol", password: "pw")
                #expect(try await client.whoami(fresh).username == "carol")
                }
            }
        }
    }
}

extension RealClusters {
    /// Names are unique per folder, enforced by the coordinator through name tags, even when
    /// clients race; lookups by name need no listing.
    @Suite(.serialized, .timeLimit(.minutes(5))) struct TreeNameTests {
        @Test func namesAreUniquePerFolderUnderRacesRenamesAndDeletes() async throws {
            try await withTemporaryDirectory { folder in
                let running = try await RunningCluster(folder: folder, topology: smallTopology("names"))
                await running.run { running in
                    let client = try running.client()
                    _ = try await client.register(username: "dora", password: "pw", parameters: .minimum)
                    let session = try await client.login(username: "dora", password: "pw")
                    for index in 0..<8 { try write([UInt8](repeating: UInt8(index), count: 1000 + index), to: folder + "/local-\(index)") }

                    // Eight clients upload to one new name at once: exactly one wins. (Regression:
                    // the losers are refused at the commit, after their bodies were read, and the
                    // coordinator used to crash trying to drain a body a second time.)
                    let outcomes = await withTaskGroup(of: ErrorCode?.self) { group in
                        for index in 0..<8 {
                            group.addTask {
                                do {
                                    _ = try await client.upload(folder + "/local-\(index)", to: "/report.txt", session)
                                    return nil
                                } catch let error as ClientError {
                                    return error.code
                                } catch {
                                    return .storageFailure
                                }
                            }
                        }
                        return await group.reduce(into: [ErrorCode?]()) { $0.append($1) }
                    }
                    #expect(outcomes.filter { $0 == nil }.count == 1, "\(outcomes)")
                    #expect(outcomes.compactMap { $0 }.allSatisfy { $0 == .nameTaken }, "\(outcomes)")
                    #expect(try await client.list("/", session).map(\.name) == ["report.txt"])

                    // The same for folders.
                    let made = await withTaskGroup(of: Bool.self) { group in
                        for _ in 0..<4 { group.addTask { (try? await client.mkdir("/photos", session)) != nil } }
                        return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
                    }
                    #expect(made == 1)

                    // Names compare after Unicode normalisation: "café" twice, composed and not.
                    _ = try await client.mkdir("/caf\u{E9}", session)
                    await #expect { _ = try await client.mkdir("/cafe\u{301}", session) } throws: { ($0 as? ClientError)?.code == .nameTaken }

                    // A rename onto a taken name is refused; a free one frees the old name.
                    await #expect { _ = try await client.move("/photos", to: "/report.txt", session) } throws: {
                        ($0 as? ClientError)?.code == .nameTaken
                    }
                    _ = try await client.move("/report.txt", to: "/renamed.txt", session)
                    _ = try await client.upload(folder + "/local-1", to: "/report.txt", session)
                    // Into an existing folder: the local name; moving keeps it unique there too.
                    _ = try await client.upload(folder + "/local-2", to: "/photos", session)
                    #expect(try await client.list("/photos", session).map(\.name) == ["local-2"])
                    await #expect { _ = try await client.upload(folder + "/local-2", to: "/photos/", session) } throws: {
                        ($0 as? ClientError)?.code == .nameTaken
                    }
                    _ = try await client.move("/renamed.txt", to: "/photos", session)
                    #expect(try await client.list("/photos", session).map(\.name) == ["local-2", "renamed.txt"])
                    try await client.remove("/photos/renamed.txt", recursive: false, session)
                    _ = try await client.upload(folder + "/local-3", to: "/photos/renamed.txt", session)
                    #expect(try await client.list("/", session).map(\.name).sorted() == ["caf\u{E9}", "photos", "report.txt"])
                    let bytes = try await client.read("/photos/renamed.txt", range: 0..<3, session)
                    #expect(bytes == [3, 3, 3])
                }
            }
        }
    }
}

/// Byte search by Foundation (compiled optimised even in debug test builds).
func contains(_ haystack: Data, _ needle: [UInt8]) -> Bool {
    haystack.range(of: Data(needle)) != nil
}

/// Every suite that brings up real processes (clusters, nodes, etcd members) runs inside this
/// one, one test at a time: on two cores, clusters started side by side starve each other of
/// CPU until timings that matter (health polls, leases, the collector's grace) break. The
/// in-memory and unit suites run beside them.
@Suite(.serialized) enum RealClusters {}
