public import Foundation
import SwiftASN1
import X509

/// Replacing the cluster CA without a moment when daemons distrust each other
/// (Docs/operations.md, "Certificates"): `rotate` makes a new CA and a bundle of the new and
/// the previous; daemons trust the bundle while their certificates are reissued one by one,
/// then trust the new CA alone.
extension CertificateAuthority {
    /// Starts a rotation in `folder`: the current CA becomes `ca-previous.pem` (and its key
    /// `ca-previous-key.pem`), a new one is written as `ca.pem`, and `ca-bundle.pem` holds both
    /// certificates. Certificates issued from `folder` afterwards are signed by the new CA.
    /// Refused while a rotation is under way (`ca-previous.pem` exists): its previous CA still
    /// signs live certificates; `finishRotation` ends it.
    public static func rotate(in folder: String, name: String = "Coffre cluster CA") throws(ClusterTLSError) -> CertificateAuthority {
        guard !FileManager.default.fileExists(atPath: folder + "/ca-previous.pem") else {
            throw ClusterTLSError(
                .conflict, "a rotation is under way in \(folder) (ca-previous.pem exists): finish it first (--finish-rotation, once no certificate of the previous CA is in use)")
        }
        let previous = try load(from: folder)
        try writeFile(folder + "/ca-previous.pem", previous.certificatePEM, mode: 0o644)
        try writeFile(folder + "/ca-previous-key.pem", previous.privateKey.pemRepresentation, mode: 0o600)
        // A name of its own: chains are built by the issuer's name, so two CAs must never share one.
        let fresh = try create(name: name + " (\(ISO8601DateFormatter().string(from: Date())))")
        try fresh.write(to: folder)
        let bundle = [fresh.certificatePEM, previous.certificatePEM].map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined()
        try writeFile(folder + "/ca-bundle.pem", bundle, mode: 0o644)
        return fresh
    }

    /// Ends a rotation: removes the previous CA and the bundle (step 4 done: every daemon
    /// trusts `ca.pem` alone). Refused while a certificate in `folder` is signed by the
    /// previous CA.
    public static func finishRotation(in folder: String, now: Date) throws(ClusterTLSError) {
        let stale = try CertificateSummary.list(folder: folder, now: now).filter { $0.signedBy == "previous" && !$0.isAuthority }
        guard stale.isEmpty else {
            throw ClusterTLSError(.conflict, "still signed by the previous CA: \(stale.map(\.name).joined(separator: ", ")): reissue them first")
        }
        for file in ["ca-previous.pem", "ca-previous-key.pem", "ca-bundle.pem"] { try? FileManager.default.removeItem(atPath: folder + "/" + file) }
    }
}

/// What a certificate file says: for `coffre admin certs --list`.
public struct CertificateSummary: Codable, Sendable, Hashable {
    /// The file's name without `.pem`.
    public var name: String
    public var subject: String
    /// `coffre://ROLE/ID`, or nil for a certificate naming no role.
    public var identity: String?
    public var issuer: String
    /// Milliseconds since 1970.
    public var notAfter: Int64
    public var daysLeft: Int
    /// `current` or `previous` (the CA of the folder that signed it), or `other`.
    public var signedBy: String
    public var isAuthority: Bool

    /// When the first certificate of a PEM file to expire does (a bundle holds several).
    public static func expiry(ofPEMFile path: String) throws -> Date {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let certificates = try PEMDocument.parseMultiple(pemString: text).map { try Certificate(pemDocument: $0) }
        guard let first = certificates.map(\.notValidAfter).min() else {
            throw ClusterTLSError(.invalidArgument, "\(path) holds no certificate")
        }
        return first
    }

    /// Every certificate in `folder`, sorted by name.
    public static func list(folder: String, now: Date) throws(ClusterTLSError) -> [CertificateSummary] {
        let files: [String]
        do { files = try FileManager.default.contentsOfDirectory(atPath: folder) } catch {
            throw ClusterTLSError(.invalidArgument, "cannot list \(folder): \(error)")
        }
        func certificate(_ file: String) -> Certificate? {
            (try? readFile(folder + "/" + file)).flatMap { try? Certificate(pemEncoded: $0) }
        }
        let current = certificate("ca.pem")
        let previous = certificate("ca-previous.pem")
        return files.filter { $0.hasSuffix(".pem") && !$0.hasSuffix("-key.pem") && $0 != "ca-bundle.pem" }.sorted().compactMap { file in
            guard let cert = certificate(file) else { return nil }
            let identity = ClusterIdentity.of(certificateDER: (try? cert.serializeAsPEM().derBytes) ?? [])
            let signedBy = current.map { cert.issuer == $0.subject } == true ? "current" : previous.map { cert.issuer == $0.subject } == true ? "previous" : "other"
            let isAuthority = (try? cert.extensions.basicConstraints).map { if case .isCertificateAuthority = $0 { true } else { false } } ?? false
            return CertificateSummary(
                name: String(file.dropLast(4)), subject: cert.subject.description, identity: identity?.uri, issuer: cert.issuer.description,
                notAfter: Int64(cert.notValidAfter.timeIntervalSince1970 * 1000),
                daysLeft: Int(cert.notValidAfter.timeIntervalSince(now) / 86_400), signedBy: signedBy, isAuthority: isAuthority)
        }
    }
}
