import AsyncHTTPClient
import Checksum
import ClusterTLS
import CoffreAPI
import CoffreModel
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import NodeClient
import Testing
import TestSupport

func randomBody(_ count: Int, seed: UInt64) -> ByteBuffer {
    var random = SeededGenerator(seed: seed)
    return ByteBuffer(bytes: random.bytes(count))
}

func crc(_ buffer: ByteBuffer) -> UInt32 { buffer.withUnsafeReadableBytes { CRC32C.checksum($0) } }

@Suite(.serialized, .timeLimit(.minutes(5))) struct StorageNodeProcessTests {
    @Test func servesShardsOverMutualTLSAndSurvivesKill9() async throws {
        try await withTemporaryDirectory { folder in
            let pki = try TestPKI(folder: folder)
            var node = try await NodeProcess.start(folder: folder, pki: pki)
            let client = StorageNodeClient(tls: try TLSSetup.client(ca: pki.ca, certificate: pki.certificate("coordinator"), key: pki.key("coordinator")))
            do {
                let health = try await client.health(base: node.base)
                #expect(health.node == "fr-1" && health.country == "FR" && health.shardCount == 0)

                let body = randomBody(1 << 20, seed: 1)
                let key = Array("segment-1/0".utf8)
                try await client.put(base: node.base, key: key, body: body, checksum: crc(body))
                let (read, checksum) = try await client.get(base: node.base, key: key)
                #expect(read == body)
                #expect(checksum == crc(body))
                #expect(try await client.health(base: node.base).usedBytes == 1 << 20)
                #expect(try await client.list(base: node.base).shards.map(\.key) == [Hex.encode(key)])

                // A body that does not match its checksum is refused and not stored.
                await #expect { try await client.put(base: node.base, key: Array("bad".utf8), body: body, checksum: crc(body) ^ 1) } throws: {
                    ($0 as? NodeClientError)?.code == .checksumMismatch
                }
                await #expect { try await client.get(base: node.base, key: Array("bad".utf8)) } throws: {
                    ($0 as? NodeClientError)?.code == .notFound
                }

                // kill -9 and restart on the same folder: the acknowledged shard is there.
                node.process.kill9()
                node = try await NodeProcess.start(folder: folder, pki: pki)
                #expect(try await client.get(base: node.base, key: key).body == body)
                #expect(try await client.health(base: node.base).shardCount == 1)
                try await client.delete(base: node.base, key: key)
                #expect(try await client.list(base: node.base).shards.isEmpty)
                let scrub = try await client.scrub(base: node.base)
                #expect(scrub.corrupt.isEmpty)
            } catch {
                Issue.record("\(error)\nnode log:\n\(node.process.log)")
            }
            try await client.shutdown()
            node.process.kill9()
        }
    }

    @Test func refusesClientsWithoutAClusterCertificate() async throws {
        try await withTemporaryDirectory { folder in
            let pki = try TestPKI(folder: folder)
            let node = try await NodeProcess.start(folder: folder, pki: pki)
            defer { node.process.kill9() }
            for (name, tls) in [
                ("no certificate", try TLSSetup.client(ca: pki.ca)),
                ("another CA's certificate", try TLSSetup.client(ca: pki.ca, certificate: pki.certificate("intruder"), key: pki.key("intruder"))),
            ] {
                let client = StorageNodeClient(tls: tls, timeout: .seconds(5))
                await #expect("\(name)") { try await client.health(base: node.base) } throws: {
                    ($0 as? NodeClientError)?.code == .unavailable
                }
                try await client.shutdown()
            }
            // And a client that does not trust the node's CA refuses the node.
            let elsewhere = try TLSSetup.client(ca: pki.certificate("intruder"), certificate: pki.certificate("coordinator"), key: pki.key("coordinator"))
            let doubtful = StorageNodeClient(tls: elsewhere, timeout: .seconds(5))
            await #expect { try await doubtful.health(base: node.base) } throws: { ($0 as? NodeClientError)?.code == .unavailable }
            try await doubtful.shutdown()
            #expect(node.process.isRunning, "the node keeps serving")
        }
    }

    /// Certificates by role: only a coordinator's certificate may call a node. Another node's
    /// certificate (of the same CA: what a node seized with its machine holds) and one naming no
    /// role are refused with 403 for every call; the shard is untouched.
    @Test func onlyCoordinatorsMayCallANode() async throws {
        try await withTemporaryDirectory { folder in
            let pki = try TestPKI(folder: folder)
            let node = try await NodeProcess.start(folder: folder, pki: pki)
            defer { node.process.kill9() }
            let coordinator = StorageNodeClient(tls: try TLSSetup.client(ca: pki.ca, certificate: pki.certificate("coordinator"), key: pki.key("coordinator")))
            let body = randomBody(100_000, seed: 9)
            let key = Array("role/1".utf8)
            try await coordinator.put(base: node.base, key: key, body: body, checksum: crc(body))
            for name in ["node", "anonymous"] {
                let client = StorageNodeClient(tls: try TLSSetup.client(ca: pki.ca, certificate: pki.certificate(name), key: pki.key(name)), timeout: .seconds(5))
                let refused: (any Error) -> Bool = { ($0 as? NodeClientError)?.code == .forbidden }
                await #expect("\(name): GET") { _ = try await client.get(base: node.base, key: key) } throws: { refused($0) }
                await #expect("\(name): PUT") { try await client.put(base: node.base, key: key, body: body, checksum: crc(body)) } throws: { refused($0) }
                await #expect("\(name): DELETE") { try await client.delete(base: node.base, key: key, ifCreatedAt: nil) } throws: { refused($0) }
                await #expect("\(name): health") { _ = try await client.health(base: node.base) } throws: { refused($0) }
                try await client.shutdown()
            }
            #expect(try await coordinator.get(base: node.base, key: key).body == body, "the shard is untouched and a coordinator still reads it")
            try await coordinator.shutdown()
        }
    }

    /// CA rotation (Docs/operations.md, "Certificates"): while daemons trust the bundle of the
    /// new and the previous CA, certificates of both are accepted; a daemon that trusts the new
    /// CA alone refuses the previous one's certificates at the handshake.
    @Test func aCABundleLetsBothCAsInDuringARotation() async throws {
        try await withTemporaryDirectory { folder in
            let pki = try TestPKI(folder: folder)
            let fresh = try CertificateAuthority.rotate(in: folder)
            try fresh.issue(commonName: "coordinator", hosts: ["127.0.0.1"], identity: .init(role: .coordinator, id: "c-new")).write(to: folder, name: "coordinator-new")
            try fresh.issue(commonName: "node", hosts: ["127.0.0.1"], identity: .init(role: .node, id: "n-new")).write(to: folder, name: "node-new")
            let bundle = folder + "/ca-bundle.pem"
            func client(_ name: String, trusting ca: String) throws -> StorageNodeClient {
                StorageNodeClient(tls: try TLSSetup.client(ca: ca, certificate: pki.certificate(name), key: pki.key(name)), timeout: .seconds(5))
            }
            // Midway: the node still has its old certificate and trusts the bundle.
            let midway = try await NodeProcess.start(id: "mid-1", folder: folder, pki: pki, ca: bundle)
            defer { midway.process.kill9() }
            for name in ["coordinator", "coordinator-new"] {
                let coordinator = try client(name, trusting: bundle)
                #expect(try await coordinator.health(base: midway.base).node == "mid-1", "\(name) during the rotation")
                try await coordinator.shutdown()
            }
            // Done: a node with a new certificate trusting only the new CA.
            let done = try await NodeProcess.start(id: "done-1", folder: folder, pki: pki, certificate: "node-new", ca: folder + "/ca.pem")
            defer { done.process.kill9() }
            let current = try client("coordinator-new", trusting: folder + "/ca.pem")
            #expect(try await current.health(base: done.base).node == "done-1")
            try await current.shutdown()
            let stale = try client("coordinator", trusting: bundle)
            await #expect("a certificate of the previous CA, after the rotation") { _ = try await stale.health(base: done.base) } throws: {
                ($0 as? NodeClientError)?.code == .unavailable
            }
            try await stale.shutdown()
        }
    }

    /// `coffred node --check-config` checks the file, the flags, the certificate and key, and
    /// exits (0 usable, 2 with the first problem) without starting anything.
    @Test func checkConfigValidatesAndStartsNothing() async throws {
        try await withTemporaryDirectory { folder in
            let pki = try TestPKI(folder: folder)
            let base = [
                "node", "--check-config", "--node", "test-node", "--region", "fr-paris", "--data-directory", folder + "/data",
                "--capacity-bytes", "1000000", "--tls-certificate", pki.certificate("node"), "--tls-key", pki.key("node"), "--tls-cluster-ca", pki.ca,
            ]
            let good = try await runProcessInBackground(builtExecutable("coffred"), base + ["--country", "FR"])
            #expect(good.status == 0, "\(good.output)")
            #expect(!FileManager.default.fileExists(atPath: folder + "/data"), "nothing started")
            let country = try await runProcessInBackground(builtExecutable("coffred"), base + ["--country", "France"])
            #expect(country.status == 2 && country.output.contains("country"), "\(country.output)")
            let key = try await runProcessInBackground(builtExecutable("coffred"), base.map { $0 == pki.key("node") ? pki.ca : $0 } + ["--country", "FR"])
            #expect(key.status == 2 && key.output.contains("TLS"), "a certificate where the key should be: \(key.output)")
            // A certificate that names another node (or none) is refused before it is used.
            let other = try await runProcessInBackground(
                builtExecutable("coffred"), base.map { $0 == "test-node" ? "fr-9" : $0 } + ["--country", "FR"])
            #expect(other.status == 2 && other.output.contains("names coffre://node/test-node, not coffre://node/fr-9"), "\(other.output)")
            let anonymous = try await runProcessInBackground(
                builtExecutable("coffred"),
                base.map { $0 == pki.certificate("node") ? pki.certificate("anonymous") : $0 == pki.key("node") ? pki.key("anonymous") : $0 }
                    + ["--country", "FR"])
            #expect(anonymous.status == 2 && anonymous.output.contains("names no cluster identity"), "\(anonymous.output)")

            // A coordinator's file: usable, then with etcd over https but no etcd_tls.
            let file = folder + "/coordinator.yaml"
            let yaml = """
                id: test-coordinator
                country: FR
                region: fr-paris
                tls: {certificate: \(pki.certificate("coordinator")), key: \(pki.key("coordinator")), cluster_ca: \(pki.ca)}
                metadata_directory: \(folder)/metadata
                cluster_port: 0
                admin_token: 0123456789abcdef0123

                """
            try yaml.write(toFile: file, atomically: true, encoding: .utf8)
            let coordinator = try await runProcessInBackground(builtExecutable("coffred"), ["coordinator", "--check-config", "--config", file])
            #expect(coordinator.status == 0, "\(coordinator.output)")
            let renamed = try await runProcessInBackground(
                builtExecutable("coffred"), ["coordinator", "--check-config", "--config", file, "--id", "c-fr"])
            #expect(renamed.status == 2 && renamed.output.contains("not coffre://coordinator/c-fr"), "\(renamed.output)")
            // The admin token from a file (a mounted secret), not both.
            try "0123456789abcdef0123\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
            let fromFile = folder + "/coordinator-token-file.yaml"
            try yaml.replacingOccurrences(of: "admin_token: 0123456789abcdef0123", with: "admin_token_file: \(folder)/token")
                .write(toFile: fromFile, atomically: true, encoding: .utf8)
            let tokenFile = try await runProcessInBackground(builtExecutable("coffred"), ["coordinator", "--check-config", "--config", fromFile])
            #expect(tokenFile.status == 0, "\(tokenFile.output)")
            try FileManager.default.removeItem(atPath: folder + "/token")
            let noToken = try await runProcessInBackground(builtExecutable("coffred"), ["coordinator", "--check-config", "--config", fromFile])
            #expect(noToken.status == 2 && noToken.output.contains("admin_token_file"), "\(noToken.output)")
            let https = try await runProcessInBackground(
                builtExecutable("coffred"), ["coordinator", "--check-config", "--config", file, "--etcd", "https://127.0.0.1:2379"])
            #expect(https.status == 2 && https.output.contains("etcd_tls"), "\(https.output)")
        }
    }

    @Test func badInputGetsItsErrorCodeAndTheNodeKeepsServing() async throws {
        try await withTemporaryDirectory { folder in
            let pki = try TestPKI(folder: folder)
            let node = try await NodeProcess.start(folder: folder, pki: pki)
            defer { node.process.kill9() }
            var configuration = HTTPClient.Configuration(
                tlsConfiguration: try TLSSetup.client(ca: pki.ca, certificate: pki.certificate("coordinator"), key: pki.key("coordinator")))
            configuration.httpVersion = .automatic
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            func call(_ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: ByteBuffer? = nil) async throws -> (UInt, String) {
                var request = HTTPClientRequest(url: node.base + path)
                request.method = method
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                if let body { request.body = .bytes(body) }
                let response = try await http.execute(request, timeout: .seconds(10))
                let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                return (response.status.code, text)
            }
            let cases: [(HTTPMethod, String, [(String, String)], ByteBuffer?, UInt, String)] = [
                (.PUT, "/v1/shards/zz", [(NodeAPI.checksumHeader, "00000000")], ByteBuffer(string: "x"), 400, "invalid_argument"),
                (.PUT, "/v1/shards/6162", [], ByteBuffer(string: "x"), 400, "invalid_argument"),
                (.PUT, "/v1/shards/6162", [(NodeAPI.checksumHeader, "nothex!!")], ByteBuffer(string: "x"), 400, "invalid_argument"),
                (.GET, "/v1/shards/6162", [], nil, 404, "not_found"),
                (.GET, "/v1/nothing-here", [], nil, 404, "not_found"),
                (.GET, "/v1/shards?after=zz", [], nil, 400, "invalid_argument"),
            ]
            for (method, path, headers, body, status, code) in cases {
                let (actual, text) = try await call(method, path, headers: headers, body: body)
                #expect(actual == status, "\(method) \(path): \(text)")
                #expect(text.contains("\"code\":\"\(code)\""), "\(method) \(path): \(text)")
            }
            let (status, _) = try await call(.GET, NodeAPI.healthPath)
            #expect(status == 200)
            try await http.shutdown()
        }
    }

    @Test func aBadConfigurationIsRefusedWithTheKeyAndReason() async throws {
        try await withTemporaryDirectory { folder in
            let pki = try TestPKI(folder: folder)
            let config = folder + "/node.yaml"
            try """
            node: fr-1
            country: FRANCE
            region: fr-paris
            data_directory: \(folder)/data
            capacity_bytes: 1000
            tls:
              certificate: \(pki.certificate("node"))
              key: \(pki.key("node"))
              cluster_ca: \(pki.ca)
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let process = try ChildProcess(executable: builtExecutable("coffred"), arguments: ["node", "--config", config], logPath: folder + "/out")
            #expect(process.waitForExit() == 2)
            #expect(process.log.contains("node.yaml: country:"), "\(process.log)")
            try "node: fr-1\n".write(toFile: config, atomically: true, encoding: .utf8)
            let missing = try ChildProcess(executable: builtExecutable("coffred"), arguments: ["node", "--config", config], logPath: folder + "/out2")
            #expect(missing.waitForExit() == 2)
            #expect(missing.log.contains("country: is required"), "\(missing.log)")
        }
    }

    /// A node whose disk fills (a real 48 MiB tmpfs under its data folder, though it declares
    /// far more capacity) refuses writes with `node_full` (507) while it still has its reserve
    /// of 32 MiB free, reports itself full, and keeps serving what it has; one whose declared
    /// capacity is used up says the same.
    @Test(.enabled(if: canMountTmpfs(), "needs root to mount a small tmpfs: the full disk is real"))
    func aFullDiskRefusesWritesWithAClearCodeAndKeepsServing() async throws {
        try await withTemporaryDirectory { folder in
            let pki = try TestPKI(folder: folder)
            let disk = folder + "/fr-1"
            try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
            let mounted = try runProcess("mount", ["-t", "tmpfs", "-o", "size=48m", "tmpfs", disk])
            try #require(mounted.status == 0, "\(mounted.output)")
            defer { _ = try? runProcess("umount", ["-l", disk]) }
            let node = try await NodeProcess.start(folder: folder, pki: pki, capacity: 1 << 30)
            let client = StorageNodeClient(tls: try TLSSetup.client(ca: pki.ca, certificate: pki.certificate("coordinator"), key: pki.key("coordinator")))
            var stored: [([UInt8], ByteBuffer)] = []
            var refusal: NodeClientError?
            for i in 0..<40 where refusal == nil {
                let body = randomBody(1 << 20, seed: UInt64(100 + i))
                let key = Array("full/\(i)".utf8)
                do {
                    try await client.put(base: node.base, key: key, body: body, checksum: crc(body))
                    stored.append((key, body))
                } catch let error as NodeClientError {
                    refusal = error
                }
            }
            #expect(refusal?.code == .nodeFull, "\(String(describing: refusal))\n\(node.process.log)")
            #expect(stored.count >= 4 && stored.count < 16, "\(stored.count) shards of 1 MiB stored")
            for (key, body) in stored { #expect(try await client.get(base: node.base, key: key).body == body) }
            let health = try await client.health(base: node.base)
            // Under a shard's worth of room beyond the reserve: offered as such, or as nothing.
            #expect(["disk_full", "disk_limited"].contains(health.status) && health.capacityBytes - health.usedBytes < 1 << 20, "\(health)")
            var free = statvfs()
            #expect(statvfs(disk, &free) == 0 && Int64(free.f_bavail) * Int64(free.f_frsize) >= Limits.nodeDiskReserveBytes - (1 << 20), "the reserve is kept")
            node.process.kill9()

            // Declared capacity used up: the same code.
            let small = try await NodeProcess.start(id: "fr-2", folder: folder, pki: pki, capacity: 3 << 20)
            for i in 0..<3 {
                let body = randomBody(1 << 20, seed: UInt64(200 + i))
                try await client.put(base: small.base, key: Array("cap/\(i)".utf8), body: body, checksum: crc(body))
            }
            let extra = randomBody(1 << 20, seed: 300)
            await #expect { try await client.put(base: small.base, key: Array("cap/x".utf8), body: extra, checksum: crc(extra)) } throws: {
                ($0 as? NodeClientError)?.code == .nodeFull
            }
            small.process.kill9()
            try await client.shutdown()
        }
    }
}

/// Whether this process may mount a tmpfs (root, and a kernel that allows it here).
func canMountTmpfs() -> Bool {
    let probe = FileManager.default.temporaryDirectory.appendingPathComponent("coffre-mount-probe-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: probe) }
    guard (try? runProcess("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe]))?.status == 0 else {
        print("note: cannot mount a tmpfs here: the full-disk test does not run")
        return false
    }
    _ = try? runProcess("umount", [probe])
    return true
}
