import AsyncHTTPClient
public import CoffreAPI
public import CoffreModel
import Foundation
public import NIOCore
import NIOHTTP1
public import NIOSSL

/// A client of one or many storage nodes, over HTTP/1.1 (see `init`) with the coordinator's cluster
/// certificate (mutual TLS).
///
/// One `HTTPClient` (one connection pool) serves every node; call `shutdown()` when done.
public final class StorageNodeClient: Sendable {
    let client: HTTPClient
    let timeout: TimeAmount
    /// Of a health probe and of the drill fault endpoint: shorter than a shard transfer's, so
    /// that a node that holds requests (a frozen process, a blackhole) is given up on sooner.
    let probeTimeout: TimeAmount

    /// - Parameter tls: from `TLSSetup.client(ca:certificate:key:)`, with the coordinator's
    ///   certificate.
    public init(tls: TLSConfiguration, timeout: Duration = .seconds(30), probeTimeout: Duration = .seconds(10)) {
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        // HTTP/1.1 with a pool of connections: AsyncHTTPClient's HTTP/2 streams bulk bodies at
        // a fraction of the speed (26 against 197 MB/s measured, Docs/performance.md).
        configuration.httpVersion = .http1Only
        configuration.timeout.connect = .seconds(5)
        // A node that refuses connections is down: say so at once rather than retrying until
        // the request's deadline, so the coordinator moves on to parity or an alternate.
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.timeout = .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
        self.probeTimeout = .milliseconds(Int64(probeTimeout.components.seconds) * 1000 + probeTimeout.components.attoseconds / 1_000_000_000_000_000)
    }

    public func shutdown() async throws { try await client.shutdown() }

    /// Stores a shard on the node at `base` ("https://127.0.0.1:7001").
    public func put(base: String, key: [UInt8], body: ByteBuffer, checksum: UInt32) async throws(NodeClientError) {
        var request = HTTPClientRequest(url: base + NodeAPI.shardsPath + "/" + Hex.encode(key))
        request.method = .PUT
        request.headers.add(name: NodeAPI.checksumHeader, value: NodeAPI.checksumText(checksum))
        request.headers.add(name: "content-length", value: String(body.readableBytes))
        // In pieces: see `Limits.networkWriteSizeMax`.
        let pieces = stride(from: 0, to: body.readableBytes, by: Limits.networkWriteSizeMax).map {
            body.getSlice(at: body.readerIndex + $0, length: min(Limits.networkWriteSizeMax, body.readableBytes - $0))!
        }
        request.body = .stream(Pieces(buffers: pieces), length: .known(Int64(body.readableBytes)))
        _ = try await send(request, base: base, expect: [201])
    }

    /// Reads a shard and the checksum the node verified it against (check it against yours).
    public func get(base: String, key: [UInt8]) async throws(NodeClientError) -> (body: ByteBuffer, checksum: UInt32) {
        var body = ByteBuffer()
        let checksum = try await get(base: base, key: key, into: &body)
        return (body, checksum)
    }

    /// Reads a shard into `buffer` (cleared first; a reused buffer saves fresh memory for
    /// every shard) and returns the checksum the node sent.
    public func get(base: String, key: [UInt8], into buffer: inout ByteBuffer) async throws(NodeClientError) -> UInt32 {
        var request = HTTPClientRequest(url: base + NodeAPI.shardsPath + "/" + Hex.encode(key))
        request.method = .GET
        buffer.clear()
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw NodeClientError(.unavailable, "node \(base): \(error)")
        }
        guard response.status.code == 200 else {
            let body = try? await response.body.collect(upTo: 1 << 20)
            if let body, let answer = try? JSONDecoder().decode(APIErrorBody.self, from: Data(body.readableBytesView)) {
                throw NodeClientError(ErrorCode(answer.error.code), "node \(base): \(answer.error.message)")
            }
            throw NodeClientError(.storageFailure, "node \(base) answered \(response.status.code)")
        }
        guard let text = response.headers.first(name: NodeAPI.checksumHeader), let checksum = NodeAPI.parseChecksum(text) else {
            throw NodeClientError(.storageFailure, "node \(base) sent a shard without its checksum")
        }
        do {
            for try await piece in response.body {
                guard buffer.readableBytes + piece.readableBytes <= Limits.shardBodySizeMax else {
                    throw NodeClientError(.limitExceeded, "node \(base) sent a shard over \(ByteCount(Limits.shardBodySizeMax))")
                }
                buffer.writeImmutableBuffer(piece)
            }
        } catch let error as NodeClientError {
            throw error
        } catch {
            throw NodeClientError(.unavailable, "node \(base): \(error)")
        }
        return checksum
    }

    public func delete(base: String, key: [UInt8], ifCreatedAt createdAt: Int64?) async throws(NodeClientError) {
        var url = base + NodeAPI.shardsPath + "/" + Hex.encode(key)
        if let createdAt { url += "?\(NodeAPI.createdAtParameter)=\(createdAt)" }
        var request = HTTPClientRequest(url: url)
        request.method = .DELETE
        _ = try await send(request, base: base, expect: [204], timeout: probeTimeout)
    }

    public func list(base: String, prefix: [UInt8], after: String?, limit: Int) async throws(NodeClientError) -> ShardPage {
        var url = base + NodeAPI.shardsPath + "?limit=\(limit)"
        if !prefix.isEmpty { url += "&prefix=" + Hex.encode(prefix) }
        if let after { url += "&after=" + after }
        let (_, body) = try await send(HTTPClientRequest(url: url), base: base, expect: [200])
        return try decode(ShardPage.self, body, base: base)
    }

    public func health(base: String) async throws(NodeClientError) -> NodeHealth {
        let (_, body) = try await send(HTTPClientRequest(url: base + NodeAPI.healthPath), base: base, expect: [200], timeout: probeTimeout)
        return try decode(NodeHealth.self, body, base: base)
    }

    public func scrub(base: String, after: String?, limit: Int) async throws(NodeClientError) -> ScrubStep {
        var request = HTTPClientRequest(url: base + NodeAPI.scrubPath + "?limit=\(limit)" + (after.map { "&after=\($0)" } ?? ""))
        request.method = .POST
        let (_, body) = try await send(request, base: base, expect: [200])
        return try decode(ScrubStep.self, body, base: base)
    }

    public func setFault(base: String, _ fault: NodeFault?) async throws(NodeClientError) {
        var request = HTTPClientRequest(url: base + NodeAPI.faultPath)
        if let fault {
            request.method = .PUT
            request.headers.add(name: "content-type", value: "application/json")
            guard let data = try? JSONEncoder().encode(fault) else { throw NodeClientError(.invalidArgument, "fault does not encode") }
            request.body = .bytes(ByteBuffer(bytes: data))
        } else {
            request.method = .DELETE
        }
        _ = try await send(request, base: base, expect: [204], timeout: probeTimeout)
    }

    // MARK: - Private

    private func send(
        _ request: HTTPClientRequest, base: String, expect: Set<UInt>, timeout: TimeAmount? = nil
    ) async throws(NodeClientError) -> (HTTPHeaders, ByteBuffer) {
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await client.execute(request, timeout: timeout ?? self.timeout)
            body = try await response.body.collect(upTo: Limits.shardBodySizeMax + 4096)
        } catch {
            throw NodeClientError(.unavailable, "node \(base): \(error)")
        }
        guard expect.contains(response.status.code) else {
            if let answer = try? JSONDecoder().decode(APIErrorBody.self, from: Data(body.readableBytesView)) {
                throw NodeClientError(ErrorCode(answer.error.code), "node \(base): \(answer.error.message)")
            }
            throw NodeClientError(.storageFailure, "node \(base) answered \(response.status.code)")
        }
        return (response.headers, body)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ body: ByteBuffer, base: String) throws(NodeClientError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body.readableBytesView))
        } catch {
            throw NodeClientError(.storageFailure, "node \(base) sent unreadable \(type): \(error)")
        }
    }
}

/// Buffers handed to AsyncHTTPClient one at a time, as a streamed request body.
struct Pieces: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let buffers: [ByteBuffer]

    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ArraySlice<ByteBuffer>
        mutating func next() async -> ByteBuffer? { rest.popFirst() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: buffers[...]) }
}

/// An error talking to a storage node; `code` is the node's own when it answered.
public struct NodeClientError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
