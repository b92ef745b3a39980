import ClusterTLS
import NIOCore
import NIOEmbedded
import Testing

@Suite struct PeerIdentitiesTests {
    /// A connection's identity is read once and forgotten when the connection closes, so the
    /// cache holds only open connections.
    @Test func anIdentityIsKeptWhileItsConnectionIsOpen() async throws {
        let peers = PeerIdentities()
        let channel = EmbeddedChannel()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        #expect(await peers.identity(of: channel) == nil, "no TLS here: no certificate, no identity")
        #expect(await peers.identity(of: channel) == nil)
        #expect(peers.count == 1)
        _ = try await channel.close().get()
        channel.embeddedEventLoop.run()
        #expect(peers.count == 0)
    }
}
