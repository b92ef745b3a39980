import AsyncHTTPClient
import ClusterTLS
import CoffreClient
import CoffreModel
import DirectIO
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdHTTP2
import LocalCluster
import Metadata
import NIOCore

/// The cluster benchmarks of issue 3: a real local cluster (3 etcd members, 4 coordinators,
/// 12 storage nodes, release binaries beside this one), driven by the client library.
///
/// Baselines, measured in the same run: for transfers, the same bytes copied over TLS on
/// loopback to and from a server that does nothing else (same TLS stack and HTTP version); for small
/// files, raw etcd transactions of the same size.
struct ClusterBenchmarks {
    let sizeMiB: Int
    let smallCount: Int
    let keep: Bool

    func run() async throws {
        let binaries = (CommandLine.arguments[0] as NSString).deletingLastPathComponent
        let run = NSTemporaryDirectory() + "coffre-bench-cluster-\(getpid())"
        let topology = ClusterTopologyFile(
            name: "bench",
            countries: ["FR", "DE", "CH", "NZ"].map { .init(code: $0, region: $0.lowercased() + "-1", nodes: 3, capacityBytes: 64 << 30) },
            etcdCountries: ["FR", "DE", "CH"], policy: .init(k: 6, m: 3, margin: 0), segmentSizeBytes: 16 << 20,
            quotaBytesDefault: 1 << 40, basePort: Int.random(in: 25_000..<32_000), downAfterSeconds: 10)
        let cluster = LocalCluster(topology: topology, runDirectory: run, binaries: binaries)
        let profile = try await cluster.up(saveProfile: false)
        defer {
            _ = try? cluster.down()
            if !keep { try? FileManager.default.removeItem(atPath: run) }
        }
        let fr = try CoffreClient(profile: profile, via: "FR")
        let nz = try CoffreClient(profile: profile, via: "NZ")
        _ = try await fr.register(username: "bench", password: "bench password", parameters: .minimum)
        let session = try await fr.login(username: "bench", password: "bench password")

        // The same random bytes for ours and the baseline.
        let file = run + "/payload.bin"
        let size = sizeMiB << 20
        try writeRandomFile(file, size: size)
        let sink = try await SinkServer.start(certificate: cluster.folder + "/certs/server.pem", key: cluster.folder + "/certs/server-key.pem", size: size)
        defer { sink.stop() }
        var configuration = HTTPClient.Configuration(tlsConfiguration: try TLSSetup.client(ca: profile.ca))
        // As the client library: HTTP/1.1 (see Docs/performance.md for HTTP/2's figures).
        configuration.httpVersion = .http1Only
        let plain = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)

        // Upload: through France, plaintext MB/s.
        let upload = Double(size) / (try await timed("upload") { _ = try await fr.upload(file, to: "/payload.bin", session) }) / 1e6
        let uploadBaseline = Double(size) / (try await timed("upload.baseline") { try await sink.upload(file: file, with: plain) }) / 1e6
        report("cluster.upload", unit: "MB/s", value: upload, baseline: uploadBaseline)

        // Download: through New Zealand, decrypted to disk.
        let download = Double(size) / (try await timed("download") { try await nz.download("/payload.bin", to: run + "/download.bin", session) }) / 1e6
        let downloadBaseline = Double(size) / (try await timed("download.baseline") { try await sink.download(to: run + "/download-baseline.bin", with: plain) }) / 1e6
        report("cluster.download", unit: "MB/s", value: download, baseline: downloadBaseline)
        precondition(FileManager.default.contentsEqual(atPath: file, andPath: run + "/download.bin"), "download differs")

        // Small files: 4 KiB each, one after another.
        try writeRandomFile(run + "/small.bin", size: 4096)
        var latencies: [Double] = []
        for i in 0..<smallCount {
            let start = now()
            _ = try await fr.upload(run + "/small.bin", to: "/small-\(i)", session)
            latencies.append(now() - start)
        }
        // etcd speaks TLS and wants a client certificate of its own CA: France's coordinator's.
        let etcdCerts = cluster.folder + "/certs/etcd"
        let etcd = try EtcdMetadataStore(
            endpoints: ["https://127.0.0.1:\(topology.basePort)"],
            tls: try TLSSetup.client(ca: etcdCerts + "/ca.pem", certificate: etcdCerts + "/client-coordinator-fr.pem", key: etcdCerts + "/client-coordinator-fr-key.pem"))
        let value = [UInt8](repeating: 7, count: 4096)
        var etcdLatencies: [Double] = []
        for i in 0..<smallCount {
            let start = now()
            _ = try await etcd.commit(if: [.absent("bench/\(i)")], then: [.put("bench/\(i)", value)])
            etcdLatencies.append(now() - start)
        }
        report("cluster.put.small", unit: "ops/s", value: Double(smallCount) / latencies.reduce(0, +), baseline: Double(smallCount) / etcdLatencies.reduce(0, +))
        report("cluster.put.small.p50", unit: "ms", value: percentile(latencies, 0.5) * 1000, baseline: percentile(etcdLatencies, 0.5) * 1000)
        report("cluster.put.small.p99", unit: "ms", value: percentile(latencies, 0.99) * 1000, baseline: percentile(etcdLatencies, 0.99) * 1000)

        // Small reads: the same files, each downloaded and decrypted through New Zealand (the
        // coordinator reads the node, its file takedowns and the manifest, then the shards);
        // the baseline is as many raw etcd reads.
        var readLatencies: [Double] = []
        for i in 0..<smallCount {
            let start = now()
            try await nz.download("/small-\(i)", to: run + "/small-read.bin", session)
            readLatencies.append(now() - start)
        }
        var etcdReads: [Double] = []
        for i in 0..<smallCount {
            let start = now()
            _ = try await etcd.get("bench/\(i)")
            etcdReads.append(now() - start)
        }
        report("cluster.get.small", unit: "ops/s", value: Double(smallCount) / readLatencies.reduce(0, +), baseline: Double(smallCount) / etcdReads.reduce(0, +))
        report("cluster.get.small.p50", unit: "ms", value: percentile(readLatencies, 0.5) * 1000, baseline: percentile(etcdReads, 0.5) * 1000)
        try await plain.shutdown()
        try await fr.shutdown()
        try await nz.shutdown()
    }

    func writeRandomFile(_ path: String, size: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = FileHandle(forWritingAtPath: path)!
        defer { try? handle.close() }
        let block = filledBuffer(1 << 20, seed: UInt8.random(in: 1...255))
        defer { block.deallocate() }
        var written = 0
        while written < size {
            let count = min(1 << 20, size - written)
            try handle.write(contentsOf: Data(bytes: block.baseAddress!, count: count))
            written += count
        }
    }

    func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
}

/// The baseline server: takes a PUT and drops the bytes, serves a GET of `size` bytes; TLS
/// and HTTP/2 as the coordinator, nothing else.
final class SinkServer: Sendable {
    let url: String
    let task: Task<Void, any Error>

    init(url: String, task: Task<Void, any Error>) {
        self.url = url
        self.task = task
    }

    static func start(certificate: String, key: String, size: Int) async throws -> SinkServer {
        let router = Router(context: BasicRequestContext.self)
        router.put("/sink") { request, _ -> Response in
            for try await _ in request.body {}
            return Response(status: .noContent)
        }
        // Pieces of the size Coffre's servers write (`Limits.networkWriteSizeMax`), so that
        // the baseline gets the same help from it.
        let block = ByteBuffer(repeating: 0x42, count: Limits.networkWriteSizeMax)
        router.get("/source") { _, _ -> Response in
            Response(status: .ok, body: ResponseBody(contentLength: size) { writer in
                var sent = 0
                while sent < size {
                    let count = min(block.readableBytes, size - sent)
                    try await writer.write(block.getSlice(at: 0, length: count)!)
                    sent += count
                }
                try await writer.finish(nil)
            })
        }
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let tls = try TLSSetup.server(certificate: certificate, key: key, clientCA: nil)
        let app = Application(
            router: router, server: try .http2Upgrade(tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let task = Task { try await app.run() }
        var iterator = stream.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        return SinkServer(url: "https://127.0.0.1:\(port)", task: task)
    }

    func upload(file: String, with client: HTTPClient) async throws {
        let handle = FileHandle(forReadingAtPath: file)!
        defer { try? handle.close() }
        let length = (try FileManager.default.attributesOfItem(atPath: file)[.size] as! NSNumber).int64Value
        var request = HTTPClientRequest(url: url + "/sink")
        request.method = .PUT
        request.body = .stream(FileChunks(handle: handle), length: .known(length))
        let response = try await client.execute(request, timeout: .minutes(10))
        _ = try await response.body.collect(upTo: 1 << 20)
    }

    func download(to path: String, with client: HTTPClient) async throws {
        // Written as the client library writes a download (direct I/O, synced at the end), so
        // that the disk costs the same on both sides.
        let output = try SequentialFileWriter(creating: path)
        let response = try await client.execute(HTTPClientRequest(url: url + "/source"), timeout: .minutes(10))
        for try await piece in response.body { try piece.withUnsafeReadableBytes { try output.write($0) } }
        try output.finish(sync: true)
    }

    func stop() { task.cancel() }
}

/// A file read in 1 MiB pieces, as the client reads plaintext.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let handle: FileHandle

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle
        mutating func next() async throws -> ByteBuffer? {
            guard let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
            return ByteBuffer(bytes: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: handle) }
}
