import Foundation
import ClusterTLS
import NIOCore
import NIOEmbedded
import Testing
import TestSupport

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

@Suite struct RotationTests {
    /// A second rotation before the first is finished would drop the CA that still signs live
    /// certificates: refused. Finishing is refused while such a certificate is left.
    @Test func aRotationIsFinishedBeforeAnotherStarts() async throws {
        try await withTemporaryDirectory { folder in
            let first = try CertificateAuthority.create()
            try first.write(to: folder)
            try first.issue(commonName: "n", hosts: ["127.0.0.1"], identity: .init(role: .node, id: "n-1")).write(to: folder, name: "node-n-1")
            let second = try CertificateAuthority.rotate(in: folder)
            #expect { _ = try CertificateAuthority.rotate(in: folder) } throws: { ($0 as? ClusterTLSError)?.code == .conflict }
            #expect { try CertificateAuthority.finishRotation(in: folder, now: Date()) } throws: { ($0 as? ClusterTLSError)?.code == .conflict }
            try second.issue(commonName: "n", hosts: ["127.0.0.1"], identity: .init(role: .node, id: "n-1")).write(to: folder, name: "node-n-1")
            try CertificateAuthority.finishRotation(in: folder, now: Date())
            #expect(!FileManager.default.fileExists(atPath: folder + "/ca-bundle.pem"))
            _ = try CertificateAuthority.rotate(in: folder)
        }
    }
}
