import AESGCM
import CoffreModel
public import Sodium

/// Share links: `https://<host>/l/<link id>#<link secret>`.
///
/// The secret lives in the URL fragment, which browsers and the CLI never send to a server.
/// The server keeps a `LinkRecord`: the node key wrapped under a key derived from the secret
/// (and the optional password), bound to the link and node ids. Deleting the record revokes
/// the link; the server enforces expiry by refusing to serve an expired record.
public struct LinkRecord: Hashable, Sendable, Codable {
    /// 16 random bytes, base64url.
    public let linkId: String
    public let nodeId: String
    public let wrappedNodeKey: WrappedKey
    /// Present when the link has a password: the Argon2id salt and parameters.
    public let passwordSalt: [UInt8]?
    public let passwordParameters: Argon2id.Parameters?
    /// Milliseconds since 1970; nil for a link that does not expire.
    public let expiresAt: Int64?

    public var hasPassword: Bool { passwordSalt != nil }
}

/// The parts of a share link URL.
public struct ParsedLink: Hashable, Sendable {
    public let host: String
    public let linkId: String
    public let secret: [UInt8]
}

public enum ShareLink {
    public static let secretSize = 32
    public static let linkIdSize = 16

    /// Creates a link to a node: the server's record and the secret for the URL fragment.
    public static func create(
        nodeKey: SecretKey, nodeId: String, password: String? = nil,
        parameters: Argon2id.Parameters = .recommended, expiresAt: Int64? = nil
    ) throws(EncryptionError) -> (record: LinkRecord, secret: [UInt8]) {
        let linkId = Base64URL.encode(secureRandomBytes(linkIdSize))
        let secret = secureRandomBytes(secretSize)
        let salt = password == nil ? nil : secureRandomBytes(Argon2id.saltSize)
        let linkKey = try deriveLinkKey(linkId: linkId, secret: secret, password: password, salt: salt, parameters: parameters)
        let record = LinkRecord(
            linkId: linkId, nodeId: nodeId,
            wrappedNodeKey: .wrap(nodeKey, under: linkKey, context: context(linkId: linkId, nodeId: nodeId)),
            passwordSalt: salt, passwordParameters: password == nil ? nil : parameters, expiresAt: expiresAt)
        return (record, secret)
    }

    /// The URL to give out. `host` may carry a port ("eu.example.com:8443").
    public static func url(host: String, linkId: String, secret: [UInt8]) -> String {
        "https://\(host)/l/\(linkId)#\(Base64URL.encode(secret))"
    }

    /// Splits a link URL; throws `invalidArgument` on anything but the expected shape.
    public static func parse(_ url: String) throws(EncryptionError) -> ParsedLink {
        let invalid = EncryptionError(.invalidArgument, "not a Coffre share link: expected https://HOST/l/ID#SECRET")
        guard url.hasPrefix("https://") else { throw invalid }
        let rest = url.dropFirst("https://".count)
        let parts = rest.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw invalid }
        let path = parts[0].split(separator: "/", omittingEmptySubsequences: false)
        guard path.count == 3, !path[0].isEmpty, path[1] == "l",
            let id = Base64URL.decode(String(path[2])), id.count == linkIdSize,
            let secret = Base64URL.decode(String(parts[1])), secret.count == secretSize
        else { throw invalid }
        return ParsedLink(host: String(path[0]), linkId: String(path[2]), secret: secret)
    }

    /// Opens the node key of a link. A wrong secret or password is `decryptionFailed`; a
    /// missing password for a protected link is `invalidArgument`.
    public static func open(_ record: LinkRecord, secret: [UInt8], password: String? = nil) throws(EncryptionError) -> SecretKey {
        if record.hasPassword && password == nil {
            throw EncryptionError(.invalidArgument, "this link needs a password")
        }
        let linkKey = try deriveLinkKey(
            linkId: record.linkId, secret: secret, password: record.hasPassword ? password : nil,
            salt: record.passwordSalt, parameters: record.passwordParameters ?? .minimum)
        return try record.wrappedNodeKey.unwrap(under: linkKey, context: context(linkId: record.linkId, nodeId: record.nodeId))
    }

    static func context(linkId: String, nodeId: String) -> WrapContext {
        WrapContext(type: "link", owner: linkId, subject: nodeId)
    }

    /// HKDF(secret || Argon2id(password, salt), salt = link id, "coffre/v1/link").
    ///
    /// The password is mixed with the secret, never used alone: a leaked record with a weak
    /// password still needs the 256-bit secret.
    static func deriveLinkKey(
        linkId: String, secret: [UInt8], password: String?, salt: [UInt8]?, parameters: Argon2id.Parameters
    ) throws(EncryptionError) -> SecretKey {
        guard secret.count == secretSize else { throw .decryptionFailed }
        var material = secret
        if let password, let salt {
            do {
                material += try Argon2id.derive(password: Array(password.utf8), salt: salt, parameters: parameters)
            } catch {
                throw EncryptionError(error.code, error.message)
            }
        }
        return try SecretKey(bytes: hkdfSHA256(key: material, salt: Array(linkId.utf8), info: Array("coffre/v1/\(KeyPurpose.link.rawValue)".utf8), count: 32))
    }
}
