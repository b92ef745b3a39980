public import NIOCore
import NIOSSL
import Synchronization

/// The cluster identity each connection's client certificate names, read and parsed once per
/// connection rather than on every request (an event-loop hop and a DER parse each), and
/// forgotten when the connection closes.
public final class PeerIdentities: Sendable {
    private let known = Mutex<[ObjectIdentifier: ClusterIdentity?]>([:])

    public init() {}

    /// The identity `connection`'s peer certificate names; nil when it names none (or the
    /// client showed no certificate).
    public func identity(of connection: any Channel) async -> ClusterIdentity? {
        let key = ObjectIdentifier(connection)
        if let cached = known.withLock({ $0[key] }) { return cached }
        let der = try? await connection.nioSSL_peerCertificate().get()?.toDERBytes()
        let identity = der.flatMap { ClusterIdentity.of(certificateDER: $0) }
        let first = known.withLock { known in
            guard known[key] == nil else { return false }
            known[key] = .some(identity)
            return true
        }
        // Runs at once when the connection closed already.
        if first { connection.closeFuture.whenComplete { [self] _ in _ = known.withLock { $0.removeValue(forKey: key) } } }
        return identity
    }

    /// Connections whose identity is remembered (for tests).
    public var count: Int { known.withLock { $0.count } }
}
