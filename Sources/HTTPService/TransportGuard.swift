import CoffreModel
import Foundation
import HummingbirdHTTP2
import HummingbirdCore
import Hummingbird
import NIOSSL
import NIOCore
import NIOHTTP1
import NIOTLS
import Logging
import NIOHTTPTypes
import HTTPTypes
import CoffreAPI
import Synchronization

/// A server child channel with a `TransportGuard` in front of everything `inner` sets up, and a
/// watch right after the TLS handler that tells the guard when the handshake is done.
struct TransportGuardedChannel<Inner: ServerChildChannel>: ServerChildChannel {
    let inner: Inner
    let counter: ConnectionCounter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Inner.Value> {
        let transport = TransportGuard(counter: counter)
        do { try channel.pipeline.syncOperations.addHandler(transport) } catch { return channel.eventLoop.makeFailedFuture(error) }
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let tls = try channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
            try channel.pipeline.syncOperations.addHandler(HandshakeWatch(transport), position: .after(tls))
            return value
        }
    }

    func handle(value: Inner.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// The first handler of every TCP connection: counts it, refuses one over the limits at once,
/// and closes one whose TLS handshake is not done within the header timeout (a client that
/// connects and sends nothing, or dribbles its handshake), counted as a slow handshake.
///
/// An HTTP/2 connection is also closed when nothing moves for the idle time and the header
/// timeout together: no byte from the client, and no write the socket took without
/// back-pressure (a download to a client that reads, however slowly, moves). HTTP/2's own idle
/// close waits for the client to answer a PING, which a client that never reads does not.
/// Counted as slow headers.
final class TransportGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Any

    let counter: ConnectionCounter
    var address = ""
    var admitted = false
    var handshakeDone = false
    var deadline: Scheduled<Void>?
    var silence: RepeatedTask?
    var lastInbound = NIODeadline.now()

    init(counter: ConnectionCounter) { self.counter = counter }

    func handlerAdded(context: ChannelHandlerContext) {
        address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        guard counter.admitTransport(address) else {
            context.close(promise: nil)
            return
        }
        admitted = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: counter.limits.headerTimeout) {
            let (handler, context) = bound.value
            guard !handler.handshakeDone else { return }
            handler.counter.countSlowHandshake()
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        silence?.cancel()
        silence = nil
        if admitted {
            admitted = false
            counter.releaseTransport(address)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastInbound = .now()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if context.channel.isWritable { lastInbound = .now() }
        context.write(data, promise: promise)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { lastInbound = .now() }
        context.fireChannelWritabilityChanged()
    }

    func handshakeCompleted(context: ChannelHandlerContext, protocol negotiated: String?) {
        handshakeDone = true
        deadline?.cancel()
        deadline = nil
        guard negotiated == "h2" else { return }
        let limit = counter.limits.idleTimeout + counter.limits.headerTimeout
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        silence = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { task in
            let (handler, context) = bound.value
            guard NIODeadline.now() - handler.lastInbound > limit else { return }
            task.cancel()
            handler.counter.countSlow(headers: true)
            context.close(promise: nil)
        }
    }
}

/// Sits after the TLS handler, where its handshake event arrives, and tells the guard (on
/// the guard's own context: it closes the whole connection).
final class HandshakeWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let transport: TransportGuard

    init(_ transport: TransportGuard) { self.transport = transport }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let negotiated) = event as? TLSUserEvent,
            let guardContext = try? context.pipeline.syncOperations.context(handler: transport)
        {
            transport.handshakeCompleted(context: guardContext, protocol: negotiated)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
