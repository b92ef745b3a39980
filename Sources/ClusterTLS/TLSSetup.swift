import CoffreModel
public import NIOSSL

/// TLS configurations for Coffre's links, from PEM files.
///
/// - a storage node: server, TLS 1.3 only, and a client certificate signed by the cluster CA
///   is required (`mutualTLS: true`): a node serves no one else;
/// - a coordinator facing clients: server, TLS 1.2+, no client certificate;
/// - a coordinator facing nodes, and the CLI facing coordinators: client, trusting only the
///   cluster CA (never the system's roots), presenting its own certificate when it has one.
public enum TLSSetup {
    public static func server(
        certificate: String, key: String, clientCA: String?, alpn: [String] = ["h2", "http/1.1"]
    ) throws(ClusterTLSError) -> TLSConfiguration {
        do {
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            configuration.applicationProtocols = alpn
            if let clientCA {
                configuration.minimumTLSVersion = .tlsv13
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
                // A server that verifies requires a client certificate (NIOSSL's rule).
                configuration.certificateVerification = .noHostnameVerification
            } else {
                configuration.minimumTLSVersion = .tlsv12
            }
            return configuration
        } catch {
            throw ClusterTLSError(.invalidArgument, "cannot load TLS server identity (\(certificate), \(key)): \(error)")
        }
    }

    /// - Parameter ca: the only authority trusted; empty for the system's authorities (a share
    ///   link opened by someone with no profile for its cluster).
    public static func client(ca: String, certificate: String? = nil, key: String? = nil) throws(ClusterTLSError) -> TLSConfiguration {
        do {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = ca.isEmpty ? .default : .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            configuration.minimumTLSVersion = .tlsv12
            configuration.certificateVerification = .fullVerification
            if let certificate, let key {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            return configuration
        } catch {
            throw ClusterTLSError(.invalidArgument, "cannot load TLS client configuration (CA \(ca)): \(error)")
        }
    }
}
