import Checksum
import ClusterTLS
public import DaemonConfiguration
import CoffreAPI
import CoffreModel
import DirectIO
import Foundation
import Hummingbird
import HummingbirdHTTP2
public import HTTPService
import HTTPTypes
public import Logging
import NIOCore
import NIOPosix
import ShardStore
import Synchronization
public import Telemetry

/// A storage node: serves put, get, stat, delete, list and scrub of shards over HTTP/1.1 or
/// HTTP/2 (by ALPN) with mutual TLS, from a `ShardStore`; reports its capacity and health.
///
/// Only clients with a certificate signed by the cluster CA get past the TLS handshake. Disk
/// work runs on NIO's blocking thread pool, never on an event loop. A request body is received
/// whole into a pooled buffer (at most `Limits.shardBodySizeMax`) before its checksum is
/// checked and it is stored, so memory per transfer is bounded by the shard size and nothing
/// unverified reaches the disk.
public final class StorageNodeServer: Sendable {
    public let configuration: StorageNodeConfiguration
    let store: ShardStore
    let usage: Mutex<(bytes: Int64, shards: Int)>
    let logger: Logger
    /// Shard bodies being received or sent, reused (see `BufferPool`).
    let bodies = BufferPool(capacity: 1 << 20, keep: Limits.nodeBodyBuffersPooledMax)
    /// A drill's fault on this node (`NodeAPI.faultPath`), in front of every other handler.
    public let faults = FaultGate()
    /// Connections held, refused and cut off.
    public let connections = ConnectionCounter()
    /// Who each connection's certificate names (only coordinators are served).
    let peers = PeerIdentities()
    /// What `/metrics` of the telemetry listener shows.
    public let metrics = MetricsRegistry()

    public init(configuration: StorageNodeConfiguration, logger: Logger) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        store = try ShardStore(
            path: configuration.dataDirectory, durability: ShardStore.Durability(rawValue: configuration.durability)!,
            engine: ShardStoreEngine(rawValue: configuration.engine)!)
        var bytes: Int64 = 0
        var shards = 0
        var cursor: ShardKey?
        repeat {
            let page = try store.list(after: cursor)
            bytes += page.reduce(0) { $0 + Int64($1.record.length) }
            shards += page.count
            cursor = page.count == Limits.shardListPageMax ? page.last?.key : nil
        } while cursor != nil
        usage = Mutex((bytes, shards))
        registerGauges()
    }

    /// The node's states, read at every scrape.
    private func registerGauges() {
        metrics.set(.buildInfo, "node", configuration.node, CoffreVersion.current, to: 1)
        for (name, path) in [("node", configuration.tls.certificate), ("cluster_ca", configuration.tls.clusterCA)] {
            if let expiry = try? CertificateSummary.expiry(ofPEMFile: path) {
                metrics.set(.certificateExpiry, name, to: expiry.timeIntervalSince1970)
            }
        }
        metrics.onScrape { [weak self] metrics in
            guard let self else { return }
            let health = self.health()
            metrics.set(.storeCapacity, to: Double(health.capacityBytes))
            metrics.set(.storeUsed, to: Double(health.usedBytes))
            metrics.set(.storeShards, to: Double(health.shardCount))
            metrics.record(self.connections.stats)
        }
    }

    /// Counts a shard operation of the store by its result.
    private func counted<T>(_ operation: String, _ work: () async throws -> T) async throws -> T {
        do {
            let value = try await work()
            metrics.counter(.storeOperations, operation, "ok").increment()
            return value
        } catch {
            let result =
                switch (error as? any CodedError)?.code {
                case .notFound?: "not_found"
                case .corrupt?, .checksumMismatch?: "corrupt"
                case .nodeFull?, .conflict?, .invalidArgument?, .limitExceeded?: "refused"
                default: "error"
                }
            metrics.counter(.storeOperations, operation, result).increment()
            throw error
        }
    }

    /// Serves until the task is cancelled or the process gets SIGTERM/SIGINT.
    ///
    /// - Parameter onListening: called with the bound port once the node accepts connections.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let tls = try TLSSetup.server(
            certificate: configuration.tls.certificate, key: configuration.tls.key, clientCA: configuration.tls.clusterCA)
        let announcer = Announcer(configuration: configuration, logger: logger)
        var app = Application(
            router: makeRouter(),
            server: try guardedServer(tls: tls, connections: connections),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "coffre-node"),
            onServerRunning: { [configuration, logger] channel in
                let port = channel.localAddress?.port ?? 0
                if let file = configuration.portFile {
                    try? String(port).write(toFile: file, atomically: true, encoding: .utf8)
                }
                logger.info("storage node listening", metadata: ["node.id": "\(configuration.node)", "node.port": "\(port)"])
                announcer.listening(port: port)
                await onListening(port)
            },
            logger: logger)
        if !configuration.announce.isEmpty { app.addServices(announcer) }
        if let telemetry = configuration.telemetry {
            app.addServices(TelemetryListener.application(
                host: telemetry.host, port: telemetry.port, portFile: telemetry.portFile, metrics: metrics, logger: logger,
                readiness: { [self] in await readiness() }))
        }
        try await app.runService()
        try? await announcer.client.shutdown()
    }

    func makeRouter() -> Router<ServiceContext> {
        let router = Router(context: ServiceContext.self)
        router.middlewares.add(RequestMetricsMiddleware<ServiceContext>(metrics: metrics))
        router.middlewares.add(ErrorMiddleware<ServiceContext>())
        router.middlewares.add(RequestsInFlightMiddleware<ServiceContext>(counter: connections))
        router.middlewares.add(CoordinatorsOnly(peers: peers))
        router.middlewares.add(FaultMiddleware<ServiceContext>(gate: faults) { $0 == NodeAPI.faultPath })
        router.put(RouterPath(NodeAPI.faultPath)) { [self] request, _ in try await setFault(request) }
        router.delete(RouterPath(NodeAPI.faultPath)) { [self] _, _ in
            faults.set(nil)
            return Response(status: .noContent)
        }
        router.get(RouterPath(NodeAPI.faultPath)) { [self] _, _ in
            guard let fault = faults.current else { return Response(status: .noContent) }
            return try jsonResponse(fault)
        }
        router.get(RouterPath(NodeAPI.healthPath)) { [self] _, _ in try jsonResponse(health()) }
        router.put(RouterPath(NodeAPI.shardsPath + "/:key")) { [self] request, context in try await put(request, context) }
        router.get(RouterPath(NodeAPI.shardsPath + "/:key")) { [self] _, context in try await get(context) }
        router.head(RouterPath(NodeAPI.shardsPath + "/:key")) { [self] _, context in try await stat(context) }
        router.delete(RouterPath(NodeAPI.shardsPath + "/:key")) { [self] request, context in try await delete(request, context) }
        router.get(RouterPath(NodeAPI.shardsPath)) { [self] request, _ in try await list(request) }
        router.post(RouterPath(NodeAPI.scrubPath)) { [self] request, _ in try await scrub(request) }
        return router
    }

    func health() -> NodeHealth {
        let (bytes, shards) = usage.withLock { $0 }
        // The capacity offered is what is configured, or less when the disk has less room left
        // (beyond its reserve): a full disk reports the node full and placement passes it over.
        var capacity = configuration.capacityBytes
        var status = "ok"
        if let free = diskFreeBytes() {
            let room = max(0, free - Limits.nodeDiskReserveBytes)
            if bytes + room < capacity {
                capacity = bytes + room
                status = room == 0 ? "disk_full" : "disk_limited"
            }
        }
        return NodeHealth(
            node: configuration.node, country: configuration.country, region: configuration.region,
            capacityBytes: capacity, usedBytes: bytes, shardCount: shards, status: status,
            incarnation: store.incarnation, connections: connections.stats)
    }

    /// Ready when the certificates load and the store answers a read (within 2 s) with room
    /// left on its disk.
    func readiness() async -> Readiness {
        var checks: [String: String] = [:]
        do {
            _ = try TLSSetup.server(certificate: configuration.tls.certificate, key: configuration.tls.key, clientCA: configuration.tls.clusterCA)
            checks["certificates"] = "ok"
        } catch {
            checks["certificates"] = "\(error)"
        }
        let answered = await Readiness.check(within: .seconds(2), late: "the store did not answer within 2 s") { [store] in
            do {
                // A key no shard has: `not_found` is the store answering.
                let probe = try ShardKey(Array(repeating: 0, count: 16))
                _ = try await NIOThreadPool.singleton.runIfActive { try store.stat(probe) }
                return "ok"
            } catch let error as any CodedError where error.code == .notFound {
                return "ok"
            } catch {
                return "the store does not answer: \(error)"
            }
        }
        checks["store"] = answered
        if health().status == "disk_full" { checks["store"] = "the disk is full" }
        return Readiness(checks: checks)
    }

    /// Bytes free on the data directory's file system for an unprivileged writer (nil when
    /// it cannot be read).
    func diskFreeBytes() -> Int64? {
        var stats = statvfs()
        guard statvfs(configuration.dataDirectory, &stats) == 0 else { return nil }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }

    // MARK: - Handlers

    private func put(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let key = try shardKey(context)
        guard let text = request.headers[HTTPField.Name(NodeAPI.checksumHeader)!], let checksum = NodeAPI.parseChecksum(text) else {
            throw APIError(.invalidArgument, "header \(NodeAPI.checksumHeader) must hold the body's CRC-32C as 8 hex digits")
        }
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > Limits.shardBodySizeMax {
            throw APIError(.limitExceeded, "shard of \(ByteCount(declared)) exceeds \(ByteCount(Limits.shardBodySizeMax))")
        }
        var body = bodies.take()
        defer { bodies.give(body) }
        // Receive at an aligned address, so that the shard store writes the body to the
        // disk with direct I/O from here, without a bounce copy.
        body.reserveCapacity((declared ?? 0) + DirectIO.alignment)
        let padding = body.withUnsafeMutableWritableBytes { DirectIO.padding($0.baseAddress) }
        body.moveWriterIndex(forwardBy: padding)
        body.moveReaderIndex(forwardBy: padding)
        for try await piece in request.body {
            guard body.readableBytes + piece.readableBytes <= Limits.shardBodySizeMax else {
                throw APIError(.limitExceeded, "shard body exceeds \(ByteCount(Limits.shardBodySizeMax))")
            }
            body.writeImmutableBuffer(piece)
        }
        let length = Int64(body.readableBytes)
        let (bytes, _) = usage.withLock { $0 }
        guard bytes + length <= configuration.capacityBytes else {
            throw APIError(.nodeFull, "node \(configuration.node) is full: \(ByteCount(bytes)) of \(ByteCount(configuration.capacityBytes)) used")
        }
        if let free = diskFreeBytes(), free - length < Limits.nodeDiskReserveBytes {
            throw APIError(
                .nodeFull,
                "node \(configuration.node)'s disk is full: \(ByteCount(free)) free, it keeps \(ByteCount(Limits.nodeDiskReserveBytes)) in reserve")
        }
        let received = body
        // One time for the record and the answer: the collector later deletes by it.
        let createdAt = Date()
        let previous = try await counted("put") {
            try await blocking { [store] in
                let previous = try? store.stat(key)
                try received.withUnsafeReadableBytes { try store.put(key, body: $0, checksum: checksum, createdAt: createdAt) }
                return previous
            }
        }
        metrics.counter(.storeBytes, "in").increment(by: length)
        usage.withLock {
            $0.bytes += length - Int64(previous?.length ?? 0)
            $0.shards += previous == nil ? 1 : 0
        }
        return try jsonResponse(ShardInfo(key: Hex.encode(key.bytes), length: length, checksum: NodeAPI.checksumText(checksum), createdAt: Int64(clamping: ShardRecord.milliseconds(createdAt))), status: .created)
    }

    private func get(_ context: ServiceContext) async throws -> Response {
        let key = try shardKey(context)
        // Read with direct I/O into an aligned stretch of a reused buffer: no page cache, no
        // fresh pages, no copy on the way out. (Taken inside the closure, so that this buffer
        // is its only reference and writing into it copies nothing.)
        let (buffer, record) = try await counted("get") { try await blocking { [store, bodies] in
            var buffer = bodies.take()
            let sized = try store.stat(key)
            let room = DirectIO.roundUp(Int(sized.length)) + DirectIO.alignment
            var record = sized
            var offset = 0
            _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { raw in
                offset = DirectIO.padding(raw.baseAddress)
                // Its own record: the shard may have been rewritten since `stat`.
                record = try store.get(key, into: UnsafeMutableRawBufferPointer(rebasing: raw[offset..<(offset + room - DirectIO.alignment)]))
                return offset + Int(record.length)
            }
            buffer.moveReaderIndex(forwardBy: offset)
            return (buffer, record)
        } }
        metrics.counter(.storeBytes, "out").increment(by: buffer.readableBytes)
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[HTTPField.Name(NodeAPI.checksumHeader)!] = NodeAPI.checksumText(record.checksum)
        headers[.contentLength] = String(buffer.readableBytes)
        return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: buffer.readableBytes) { [bodies] writer in
            // In pieces: see `Limits.networkWriteSizeMax`.
            var rest = buffer
            while let piece = rest.readSlice(length: min(rest.readableBytes, Limits.networkWriteSizeMax)), piece.readableBytes > 0 {
                try await writer.write(piece)
            }
            try await writer.finish(nil)
            bodies.give(buffer)
        })
    }

    private func stat(_ context: ServiceContext) async throws -> Response {
        let key = try shardKey(context)
        let record = try await blocking { [store] in try store.stat(key) }
        var headers = HTTPFields()
        headers[.contentLength] = String(record.length)
        headers[HTTPField.Name(NodeAPI.checksumHeader)!] = NodeAPI.checksumText(record.checksum)
        return Response(status: .ok, headers: headers)
    }

    /// `DELETE /v1/shards/KEY`, or with `?created-at=MS` only the shard created at that
    /// millisecond (409 `conflict` otherwise, nothing deleted): the collector's
    /// compare-and-delete.
    private func delete(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let key = try shardKey(context)
        let previous: ShardRecord?
        if let text = request.uri.queryParameters.get(NodeAPI.createdAtParameter) {
            guard let millis = Int64(text), millis >= 0 else {
                throw APIError(.invalidArgument, "\(NodeAPI.createdAtParameter) is milliseconds since 1970, got \(text)")
            }
            previous = try await counted("delete") {
                guard let deleted = try await blocking({ [store] in try store.delete(key, ifCreatedAtMilliseconds: UInt64(millis)) }) else {
                    throw APIError(.conflict, "shard \(Hex.encode(key.bytes)) is absent or was not created at \(millis)")
                }
                return deleted
            }
        } else {
            previous = try? await blocking { [store] in try store.stat(key) }
            try await counted("delete") { try await blocking { [store] in try store.delete(key) } }
        }
        if let previous {
            usage.withLock {
                $0.bytes -= Int64(previous.length)
                $0.shards -= 1
            }
        }
        return Response(status: .noContent)
    }

    private func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let prefix = try query.get("prefix").map { try hexBytes($0, "prefix") } ?? []
        let after = try query.get("after").map { try ShardKey(try hexBytes($0, "after")) }
        let limit = query.get("limit").flatMap(Int.init) ?? Limits.shardListPageMax
        let page = try await blocking { [store] in try store.list(prefix: prefix, after: after, limit: limit) }
        let shards = page.map {
            ShardInfo(key: Hex.encode($0.key.bytes), length: Int64($0.record.length), checksum: NodeAPI.checksumText($0.record.checksum), createdAt: Int64(clamping: $0.record.createdAtMilliseconds))
        }
        let full = page.count == min(max(limit, 0), Limits.shardListPageMax)
        return try jsonResponse(ShardPage(shards: shards, next: full ? shards.last?.key : nil))
    }

    private func scrub(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let after = try query.get("after").map { try ShardKey(try hexBytes($0, "after")) }
        let limit = min(query.get("limit").flatMap(Int.init) ?? 100, 1000)
        let report = try await blocking { [store] in try store.scrub(after: after, limit: limit) }
        if !report.corrupt.isEmpty {
            logger.warning("scrub found corrupt shards", metadata: ["shard.count": "\(report.corrupt.count)"])
        }
        return try jsonResponse(ScrubStep(
            scanned: report.scanned, bytesVerified: report.bytesVerified,
            corrupt: report.corrupt.map { .init(key: Hex.encode($0.key.bytes), reason: $0.reason) },
            next: report.cursor.map { Hex.encode($0.bytes) }))
    }

    /// A drill's fault: checked, logged, and on until lifted or `untilMillis`.
    private func setFault(_ request: Request) async throws -> Response {
        let fault = try await decodeBody(NodeFault.self, request, limit: 4096)
        let now = millis(Date())
        guard fault.untilMillis > now, fault.untilMillis - now <= Limits.drillSecondsMax * 1000 + 3_600_000 else {
            throw APIError(.invalidArgument, "a fault must end within \(Limits.drillSecondsMax) s and after now")
        }
        guard (0...60_000).contains(fault.latencyMilliseconds), (0...100).contains(fault.lossPercent) else {
            throw APIError(.invalidArgument, "latency must be 0...60000 ms and loss 0...100 %")
        }
        faults.set(fault)
        logger.notice(
            "drill fault on", metadata: ["node.id": "\(configuration.node)", "drill.id": "\(fault.drill)", "drill.mode": "\(fault.mode.rawValue)"])
        return Response(status: .noContent)
    }

    // MARK: - Helpers

    private func shardKey(_ context: ServiceContext) throws -> ShardKey {
        try ShardKey(try hexBytes(try context.parameters.require("key"), "shard key"))
    }

    private func hexBytes(_ text: String, _ what: String) throws -> [UInt8] {
        guard let bytes = Hex.decode(text) else { throw APIError(.invalidArgument, "\(what) must be hexadecimal") }
        return bytes
    }

    /// Runs blocking disk work on NIO's thread pool.
    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }
}

func millis(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970 * 1000) }


/// Only coordinators call a storage node. Mutual TLS proves a client holds a certificate of the
/// cluster's CA; the identity the certificate names (`coffre://coordinator/ID`, a URI SAN) says
/// it is a coordinator. A node's certificate, or one naming no identity, is refused (403) for
/// every call — shards, scrub, health, a drill's fault — so that a node's key, seized with its
/// machine, cannot read, write or delete shards anywhere else.
struct CoordinatorsOnly: RouterMiddleware {
    typealias Context = ServiceContext
    let peers: PeerIdentities

    func handle(_ request: Request, context: ServiceContext, next: (Request, ServiceContext) async throws -> Response) async throws -> Response {
        guard let identity = await peers.identity(of: context.connection) else {
            throw APIError(.forbidden, "the client certificate names no cluster identity: only coordinators (coffre://coordinator/ID) call a storage node")
        }
        guard identity.role == .coordinator else {
            throw APIError(.forbidden, "\(identity) may not call a storage node: only coordinators do")
        }
        return try await next(request, context)
    }
}
