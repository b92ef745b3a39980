public import CoffreModel
import Foundation
import HummingbirdHTTP2
public import HummingbirdCore
import Hummingbird
public import NIOSSL
public import NIOCore
import NIOHTTP1
import NIOTLS
import Logging
import NIOHTTPTypes
import HTTPTypes
public import CoffreAPI
import Synchronization

/// What a daemon lets one client hold: connections in all and per source address, how long a
/// connection may wait for a request's headers, and how slowly a request body may arrive.
public struct ConnectionLimits: Sendable {
    public var connectionsMax: Int
    public var connectionsPerAddressMax: Int
    /// From a connection's opening to its first request's headers, whole.
    public var headerTimeout: TimeAmount
    /// From the end of an answer to the next request's headers (keep-alive).
    public var idleTimeout: TimeAmount
    /// A body must bring at least `bodyProgressBytes` every `bodyProgressInterval` of the
    /// daemon waiting for it (time the daemon itself is not reading does not count).
    public var bodyProgressInterval: TimeAmount
    public var bodyProgressBytes: Int
    /// Requests served at once; more are shed (503 `unavailable`, `Retry-After: 1`).
    public var requestsInFlightMax: Int

    public init(
        connectionsMax: Int = Limits.connectionsMax, connectionsPerAddressMax: Int = Limits.connectionsPerAddressMax,
        headerTimeout: TimeAmount = .seconds(Limits.requestHeaderSecondsMax), idleTimeout: TimeAmount = .seconds(Limits.keepAliveIdleSecondsMax),
        bodyProgressInterval: TimeAmount = .seconds(Limits.bodyProgressSeconds), bodyProgressBytes: Int = Limits.bodyProgressBytesMin,
        requestsInFlightMax: Int = Limits.requestsInFlightMax
    ) {
        self.requestsInFlightMax = requestsInFlightMax
        self.connectionsMax = connectionsMax
        self.connectionsPerAddressMax = connectionsPerAddressMax
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.bodyProgressInterval = bodyProgressInterval
        self.bodyProgressBytes = bodyProgressBytes
    }
}

/// The HTTPS server of every daemon: HTTP/2 by ALPN (HTTP/1.1 otherwise), the connection
/// guard on every connection and stream, and the header limits of `Limits`.
///
/// Each TCP connection passes a `TransportGuard` first: it is counted (its own tally, against
/// the same limits) and must finish its TLS handshake within the header timeout; an HTTP/2
/// connection with no open stream is closed after the keep-alive idle time.
public func guardedServer(tls: TLSConfiguration, connections: ConnectionCounter) throws -> HTTPServerBuilder {
    let decoder = HTTP1Channel.Configuration.DecoderConfiguration(
        maxHeaderFieldSize: Limits.requestHeaderBytesMax, maxHeaderListSize: Limits.requestHeaderBytesMax,
        maxHeaderFieldCount: Limits.requestHeaderCountMax)
    let stream = HTTP1Channel.Configuration(additionalChannelHandlers: [connections.makeGuard()], httpDecoderConfiguration: decoder)
    // Idle: no open stream. Once the client answers the GOAWAY's PING, its open streams get
    // the idle time to finish (a download under way is not cut short); a client that never
    // answers is the transport guard's to cut.
    let configuration = HTTP2UpgradeChannel.Configuration(
        idleTimeout: .nanoseconds(connections.limits.idleTimeout.nanoseconds),
        gracefulCloseTimeout: .nanoseconds(connections.limits.idleTimeout.nanoseconds), streamConfiguration: stream)
    return HTTPServerBuilder { responder in
        TransportGuardedChannel(
            inner: try HTTP2UpgradeChannel(tlsConfiguration: tls, configuration: configuration, responder: responder), counter: connections)
    }
}

/// The connections a daemon holds, shared by every connection's `ConnectionGuard`, and what
/// it refused or cut off.
public final class ConnectionCounter: Sendable {
    public struct Counts: Sendable, Hashable {
        public var open = 0
        public var refused = 0
        public var slowHeaders = 0
        public var slowBodies = 0
        public var requestsInFlight = 0
        public var shed = 0
        /// TCP connections held (whatever their protocol, before TLS), and those closed for
        /// not finishing their TLS handshake in time.
        public var transports = 0
        public var slowHandshakes = 0
    }

    public let limits: ConnectionLimits
    struct State {
        var counts = Counts()
        var connections = Tally()
        var transports = Tally()
    }
    private let state = Mutex(State())

    public init(limits: ConnectionLimits = .init()) {
        self.limits = limits
    }

    public var counts: Counts {
        state.withLock { state in
            var counts = state.counts
            counts.open = state.connections.held
            counts.transports = state.transports.held
            return counts
        }
    }

    /// The counts as the health endpoints show them.
    public var stats: ConnectionStats {
        let counts = self.counts
        return ConnectionStats(
            open: counts.open, refused: counts.refused, slowHeaders: counts.slowHeaders, slowBodies: counts.slowBodies,
            requestsInFlight: counts.requestsInFlight, requestsInFlightMax: limits.requestsInFlightMax, shed: counts.shed,
            transports: counts.transports, slowHandshakes: counts.slowHandshakes)
    }

    /// Takes a place for a request; false (and counted as shed) when as many are served as may be.
    func startRequest() -> Bool {
        state.withLock { state in
            guard state.counts.requestsInFlight < limits.requestsInFlightMax else {
                state.counts.shed += 1
                return false
            }
            state.counts.requestsInFlight += 1
            return true
        }
    }

    func endRequest() {
        state.withLock { $0.counts.requestsInFlight -= 1 }
    }

    /// One tally of places: connections (HTTP/1.1 connections and HTTP/2 streams), or TCP
    /// connections; each held in all and per source address.
    struct Tally {
        var held = 0
        var perAddress: [String: Int] = [:]
    }

    /// Takes a place for a connection (or stream) from `address`; false (and counted) when the
    /// daemon or that address holds as many as it may.
    func admit(_ address: String) -> Bool { take(address, \.connections) }
    func release(_ address: String) { give(address, \.connections) }
    /// Takes a place for a TCP connection: the same limits as `admit`, a tally of its own.
    func admitTransport(_ address: String) -> Bool { take(address, \.transports) }
    func releaseTransport(_ address: String) { give(address, \.transports) }

    private func take(_ address: String, _ tally: WritableKeyPath<State, Tally>) -> Bool {
        state.withLock { state in
            let held = state[keyPath: tally].perAddress[address, default: 0]
            guard state[keyPath: tally].held < limits.connectionsMax, held < limits.connectionsPerAddressMax else {
                state.counts.refused += 1
                return false
            }
            state[keyPath: tally].held += 1
            state[keyPath: tally].perAddress[address] = held + 1
            return true
        }
    }

    private func give(_ address: String, _ tally: WritableKeyPath<State, Tally>) {
        state.withLock { state in
            state[keyPath: tally].held -= 1
            let held = state[keyPath: tally].perAddress[address, default: 1] - 1
            state[keyPath: tally].perAddress[address] = held > 0 ? held : nil
        }
    }

    func countSlowHandshake() {
        state.withLock { $0.counts.slowHandshakes += 1 }
    }

    func countSlow(headers: Bool) {
        state.withLock { headers ? ($0.counts.slowHeaders += 1) : ($0.counts.slowBodies += 1) }
    }

    /// A new guard for one connection (or HTTP/2 stream): what `additionalChannelHandlers` gets.
    public func makeGuard() -> any RemovableChannelHandler { ConnectionGuard(counter: self) }
}

/// One connection's guard, after the HTTP codec: refuses a connection over the limits at once,
/// cuts off one whose request headers do not come in time (and one idle too long between
/// requests), and one whose body stops making progress. What it cuts off is counted.
///
/// Body progress counts only time the daemon waits for the client: a read asked for and not
/// yet answered. While a handler does not read (its own work is slow: a node that holds its
/// shard writes) back-pressure asks for nothing, and the client is not blamed.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Phase {
        case awaitingHead(since: NIODeadline, limit: TimeAmount)
        case readingBody(waited: TimeAmount, bytes: Int)
        case answering
    }

    let counter: ConnectionCounter
    var address = ""
    var admitted = false
    var phase = Phase.answering
    var timer: RepeatedTask?
    /// A read was asked for (the daemon wants bytes) and not answered yet.
    var readPending = false
    /// The answer being written says `Connection: close`.
    var closeAfterAnswer = false
    static let tick = TimeAmount.milliseconds(500)

    init(counter: ConnectionCounter) {
        self.counter = counter
    }

    func handlerAdded(context: ChannelHandlerContext) {
        address = context.channel.remoteAddress?.ipAddress ?? context.channel.parent?.remoteAddress?.ipAddress ?? "unknown"
        guard counter.admit(address) else {
            context.close(promise: nil)
            return
        }
        admitted = true
        phase = .awaitingHead(since: .now(), limit: counter.limits.headerTimeout)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: Self.tick, delay: Self.tick) { _ in
            let (handler, context) = bound.value
            handler.check(context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if admitted {
            admitted = false
            counter.release(address)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head) where head.method == .connect:
            // No proxying here; the router would answer without a body.
            answer(context, .badRequest, "CONNECT is not served: this is an HTTPS API, not a proxy")
            return
        case .head: phase = .readingBody(waited: .zero, bytes: 0)
        case .body(let bytes):
            if case .readingBody(let waited, let count) = phase { phase = .readingBody(waited: waited, bytes: count + bytes.readableBytes) }
        case .end: phase = .answering
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readPending = false
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        readPending = true
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.headerFields[.connection] == "close":
            closeAfterAnswer = true
        case .end where closeAfterAnswer:
            // The answer says the connection ends (the request's body was left unread).
            context.writeAndFlush(data, promise: promise)
            context.close(promise: nil)
            return
        case .end:
            if case .answering = phase { phase = .awaitingHead(since: .now(), limit: counter.limits.idleTimeout) }
        default:
            break
        }
        context.write(data, promise: promise)
    }

    /// A request the HTTP parser refused before it was handed on (bad framing, headers too
    /// large, a bad method or URL): answered here with the API's JSON error, then closed.
    /// Errors in the middle of a body go on to the handler reading it (its body throws).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let problem = error as? HTTPParserError, case .awaitingHead = phase else {
            context.fireErrorCaught(error)
            return
        }
        answer(context, problem == .headerOverflow ? .limitExceeded : .badRequest, "malformed HTTP request: \(describe(problem))")
    }

    /// Answers with the API's JSON error and closes: for what never reaches a handler.
    private func answer(_ context: ChannelHandlerContext, _ code: ErrorCode, _ message: String) {
        let bytes = (try? JSONEncoder().encode(APIErrorBody(code: code, message: message))) ?? Data()
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(bytes.count)
        fields[.connection] = "close"
        phase = .answering
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: APIErrorBody.status(for: code)), headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: bytes))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    private func check(_ context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        switch phase {
        case .awaitingHead(let since, let limit) where now - since > limit:
            // Nothing in progress: no answer is owed; a client that never sent its headers is
            // cut off, counted as slow only when it had not been answered before.
            if limit == counter.limits.headerTimeout { counter.countSlow(headers: true) }
            cutOff(context)
        case .readingBody(let waited, let bytes) where readPending:
            let total = waited + Self.tick
            guard total >= counter.limits.bodyProgressInterval else {
                phase = .readingBody(waited: total, bytes: bytes)
                return
            }
            if bytes < counter.limits.bodyProgressBytes {
                counter.countSlow(headers: false)
                cutOff(context)
            } else {
                phase = .readingBody(waited: .zero, bytes: 0)
            }
        default:
            break
        }
    }

    private func cutOff(_ context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        phase = .answering
        context.close(promise: nil)
    }
}
