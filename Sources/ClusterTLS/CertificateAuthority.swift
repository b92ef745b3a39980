public import CoffreModel
import Crypto
import Foundation
import SwiftASN1
import X509

/// The cluster's private certificate authority: it signs the certificates that coordinators
/// and storage nodes present to each other (mutual TLS) and to clients.
///
/// Keys are ECDSA P-256; certificates carry both serverAuth and clientAuth, since a
/// coordinator is a server to clients and a client to nodes. Files are PEM; private keys are
/// written with mode 0600.
public struct CertificateAuthority: Sendable {
    public let certificatePEM: String
    let privateKey: P256.Signing.PrivateKey
    let certificate: Certificate

    /// A certificate and its private key, in PEM.
    public struct Issued: Sendable {
        public let certificatePEM: String
        public let privateKeyPEM: String

        /// Writes `<name>.pem` and `<name>-key.pem` (0600) into `folder`.
        public func write(to folder: String, name: String) throws(ClusterTLSError) {
            try writeFile(folder + "/\(name).pem", certificatePEM, mode: 0o644)
            try writeFile(folder + "/\(name)-key.pem", privateKeyPEM, mode: 0o600)
        }
    }

    /// Creates a new authority valid for `years`.
    public static func create(name: String = "Coffre cluster CA", years: Int = 10) throws(ClusterTLSError) -> CertificateAuthority {
        let key = P256.Signing.PrivateKey()
        do {
            let subject = try DistinguishedName {
                OrganizationName("Coffre")
                CommonName(name)
            }
            let now = Date()
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(years) * 365 * 86_400),
                issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                },
                issuerPrivateKey: .init(key))
            return CertificateAuthority(certificatePEM: try certificate.serializeAsPEM().pemString, privateKey: key, certificate: certificate)
        } catch {
            throw ClusterTLSError(.cryptoFailure, "cannot create the cluster CA: \(error)")
        }
    }

    /// Loads an authority written by `write(to:)`.
    public static func load(from folder: String) throws(ClusterTLSError) -> CertificateAuthority {
        let certificateText = try readFile(folder + "/ca.pem")
        let keyText = try readFile(folder + "/ca-key.pem")
        do {
            let certificate = try Certificate(pemEncoded: certificateText)
            let key = try P256.Signing.PrivateKey(pemRepresentation: keyText)
            return CertificateAuthority(certificatePEM: certificateText, privateKey: key, certificate: certificate)
        } catch {
            throw ClusterTLSError(.invalidArgument, "cannot read the cluster CA in \(folder): \(error)")
        }
    }

    /// Writes `ca.pem` and `ca-key.pem` (0600) into `folder`, creating it.
    public func write(to folder: String) throws(ClusterTLSError) {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw ClusterTLSError(.storageFailure, "cannot create \(folder): \(error)")
        }
        try writeFile(folder + "/ca.pem", certificatePEM, mode: 0o644)
        try writeFile(folder + "/ca-key.pem", privateKey.pemRepresentation, mode: 0o600)
    }

    /// Issues a certificate for `commonName`, valid for the given host names and IP addresses.
    ///
    /// - Parameter hosts: DNS names ("node-1.fr.coffre") and IPv4/IPv6 literals ("127.0.0.1").
    ///   - identity: the cluster role and id the certificate names (a URI SAN
    ///     `coffre://ROLE/ID`): a node may announce itself only under its own id.
    public func issue(commonName: String, hosts: [String], identity: ClusterIdentity? = nil, days: Int = 397) throws(ClusterTLSError) -> Issued {
        guard !hosts.isEmpty else {
            throw ClusterTLSError(.invalidArgument, "a certificate for \(commonName) needs at least one host name or address")
        }
        let key = P256.Signing.PrivateKey()
        do {
            let names = try hosts.map { host throws(ClusterTLSError) -> GeneralName in
                if let address = Self.ipAddressBytes(host) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))) }
                guard Self.isDNSName(host) else {
                    throw ClusterTLSError(.invalidArgument, "\"\(host)\" is neither a host name nor an IP address")
                }
                return .dnsName(host)
            } + (identity.map { [GeneralName.uniformResourceIdentifier($0.uri)] } ?? [])
            let subject = try DistinguishedName {
                OrganizationName("Coffre")
                CommonName(commonName)
            }
            let now = Date()
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
                issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.serverAuth, .clientAuth])
                    SubjectAlternativeNames(names)
                },
                issuerPrivateKey: .init(privateKey))
            return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
        } catch let error as ClusterTLSError {
            throw error
        } catch {
            throw ClusterTLSError(.cryptoFailure, "cannot issue a certificate for \(commonName): \(error)")
        }
    }

    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func isDNSName(_ text: String) -> Bool {
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return !text.isEmpty && text.utf8.count <= 253 && labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
        }
    }
}

func writeFile(_ path: String, _ text: String, mode: Int) throws(ClusterTLSError) {
    let created = FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
    guard created else { throw ClusterTLSError(.storageFailure, "cannot write \(path)") }
}

func readFile(_ path: String) throws(ClusterTLSError) -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ClusterTLSError(.invalidArgument, "cannot read \(path)")
    }
    return String(decoding: data, as: UTF8.self)
}

/// An error from certificate handling.
public struct ClusterTLSError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Who a cluster certificate says its holder is: a role and an id, as the URI
/// `coffre://ROLE/ID` in its subject alternative names.
public struct ClusterIdentity: Hashable, Sendable, CustomStringConvertible {
    public enum Role: String, Sendable, Hashable {
        case node, coordinator
    }

    public let role: Role
    public let id: String

    public init(role: Role, id: String) {
        self.role = role
        self.id = id
    }

    public var uri: String { "coffre://\(role.rawValue)/\(id)" }
    public var description: String { uri }

    public init?(uri: String) {
        guard uri.hasPrefix("coffre://") else { return nil }
        let parts = uri.dropFirst("coffre://".count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let role = Role(rawValue: String(parts[0])), !parts[1].isEmpty else { return nil }
        self.init(role: role, id: String(parts[1]))
    }

    /// The identity the first certificate of a PEM file names (nil when unreadable or none).
    public static func of(certificateFile path: String) -> ClusterIdentity? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let certificate = try? Certificate(pemEncoded: text),
            let der = try? certificate.serializeAsPEM().derBytes
        else { return nil }
        return of(certificateDER: der)
    }

    /// The identity a DER certificate names, or nil when it names none (or several).
    ///
    /// The identity is a URI SAN `coffre://ROLE/ID`. A certificate with no such SAN may name it
    /// in its common name instead, exactly `coffre://ROLE/ID`: Helm's template functions, which
    /// make the chart's own CA and certificates, cannot write URI SANs. Both mean the same: only
    /// the cluster's CA is trusted, and it alone chooses what a certificate says. When both are
    /// there they must agree.
    public static func of(certificateDER der: [UInt8]) -> ClusterIdentity? {
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        let names = (try? certificate.extensions.subjectAlternativeNames).map { Array($0) } ?? []
        let identities = names.compactMap { name -> ClusterIdentity? in
            if case .uniformResourceIdentifier(let uri) = name { return ClusterIdentity(uri: uri) }
            return nil
        }
        let commonNames = certificate.subject.flatMap { $0 }.filter { $0.type == .RDNAttributeType.commonName }
        let fromCommonName = commonNames.count == 1 ? ClusterIdentity(uri: commonNames[0].value.description) : nil
        switch (identities.count, fromCommonName) {
        case (0, let named): return named
        case (1, nil): return identities[0]
        case (1, let named?): return named == identities[0] ? named : nil
        default: return nil
        }
    }
}
