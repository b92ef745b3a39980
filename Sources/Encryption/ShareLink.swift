import AESGCM
public import CoffreModel
import Foundation

/// Share links: `https://<host>/l/<link id>#<link secret>`.
///
/// The secret lives in the URL fragment, which browsers and the CLI never send to a server.
/// The server keeps a `LinkRecord`: the node key wrapped under a key derived from the secret
/// (and the optional password), bound to the link and node ids. Deleting the record revokes
/// the link; the server enforces expiry by refusing to serve an expired record.
///
/// Every byte of this format is specified in Docs/keys.md ("Share links"), with vectors in
/// Tests/EncryptionTests/Vectors/keys-v1.json.
public struct LinkRecord: Hashable, Sendable, Codable {
    /// The only record version this code writes and reads.
    public static let currentVersion = 1

    public let version: Int
    /// 16 random bytes, base64url.
    public let linkId: String
    /// The linked node (a file or a folder).
    public let nodeId: String
    public let wrappedNodeKey: WrappedKey
    /// Present when the link has a password.
    public let password: LinkPassword?

    public var hasPassword: Bool { password != nil }

    public init(linkId: String, nodeId: String, wrappedNodeKey: WrappedKey, password: LinkPassword?) {
        version = Self.currentVersion
        self.linkId = linkId
        self.nodeId = nodeId
        self.wrappedNodeKey = wrappedNodeKey
        self.password = password
    }

    enum CodingKeys: String, CodingKey { case version, linkId, nodeId, wrappedNodeKey, password }

    /// Reads a record as a server returns it: a version this code does not know is
    /// `unsupportedVersion` (thrown from `ShareLink.decodeRecord`), anything malformed a
    /// decoding error. The wrapped key is base64url text, as every binary field in records.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        version = try container.decode(Int.self, forKey: .version)
        guard version == Self.currentVersion else {
            throw EncryptionError(.unsupportedVersion, "link record version \(version) is not known to this client (it reads version \(Self.currentVersion))")
        }
        linkId = try container.decode(String.self, forKey: .linkId)
        nodeId = try container.decode(String.self, forKey: .nodeId)
        let wrapped = try container.decode(String.self, forKey: .wrappedNodeKey)
        guard let bytes = Base64URL.decode(wrapped), let key = try? WrappedKey(bytes: bytes) else {
            throw DecodingError.dataCorruptedError(forKey: .wrappedNodeKey, in: container, debugDescription: "a wrapped key is base64url of 61 bytes starting with 0x01")
        }
        wrappedNodeKey = key
        password = try container.decodeIfPresent(LinkPassword.self, forKey: .password)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encode(linkId, forKey: .linkId)
        try container.encode(nodeId, forKey: .nodeId)
        try container.encode(Base64URL.encode(wrappedNodeKey.bytes), forKey: .wrappedNodeKey)
        try container.encodeIfPresent(password, forKey: .password)
    }
}

/// How a link password is stretched: PBKDF2-HMAC-SHA512 with a salt and a round count.
///
/// Not Argon2id (as account passwords): the link must unlock in a browser, and WebCrypto has
/// PBKDF2 but nothing memory-hard. The password is never the only secret: it is mixed with the
/// 256-bit secret of the URL, so it protects a link whose URL leaked (Docs/keys.md).
public struct LinkPassword: Hashable, Sendable, Codable {
    public static let pbkdf2SHA512 = "pbkdf2-sha512"
    public static let saltSize = 16

    /// Always "pbkdf2-sha512" in version 1.
    public let kdf: String
    public let iterations: Int
    /// 16 random bytes, base64url.
    public let salt: String

    public init(iterations: Int, salt: [UInt8]) {
        kdf = Self.pbkdf2SHA512
        self.iterations = iterations
        self.salt = Base64URL.encode(salt)
    }

    /// The 32-byte stretched password, after checking what a server could have altered: the
    /// algorithm, the salt's size, and the rounds (a floor and a ceiling).
    func stretch(_ password: String) throws(EncryptionError) -> [UInt8] {
        guard kdf == Self.pbkdf2SHA512 else {
            throw EncryptionError(.unsupportedVersion, "link password algorithm \"\(kdf)\" is not known to this client")
        }
        guard let saltBytes = Base64URL.decode(salt), saltBytes.count == Self.saltSize else {
            throw EncryptionError(.invalidArgument, "a link password salt is base64url of \(Self.saltSize) bytes")
        }
        guard iterations >= Limits.linkPasswordIterationsMin else {
            throw EncryptionError(.weakParameters, "\(iterations) PBKDF2 rounds is under the floor of \(Limits.linkPasswordIterationsMin)")
        }
        guard iterations <= Limits.linkPasswordIterationsMax else {
            throw EncryptionError(.limitExceeded, "\(iterations) PBKDF2 rounds is over the ceiling of \(Limits.linkPasswordIterationsMax)")
        }
        return PBKDF2.sha512(password: ShareLink.passwordBytes(password), salt: saltBytes, iterations: iterations, count: 32)
    }
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
        nodeKey: SecretKey, nodeId: String, password: String? = nil, iterations: Int = Limits.linkPasswordIterationsDefault
    ) throws(EncryptionError) -> (record: LinkRecord, secret: [UInt8]) {
        try create(nodeKey: nodeKey, nodeId: nodeId, password: password, iterations: iterations, random: secureRandomBytes)
    }

    /// - Parameter random: the source of the link id, secret, salt and nonce, in that order
    ///   (the system's CSPRNG; the vector tests pass fixed values).
    static func create(
        nodeKey: SecretKey, nodeId: String, password: String?, iterations: Int, random: (Int) -> [UInt8]
    ) throws(EncryptionError) -> (record: LinkRecord, secret: [UInt8]) {
        let linkId = Base64URL.encode(random(linkIdSize))
        let secret = random(secretSize)
        let passwordRecord = password == nil ? nil : LinkPassword(iterations: iterations, salt: random(LinkPassword.saltSize))
        let linkKey = try deriveLinkKey(linkId: linkId, secret: secret, password: password.map { ($0, passwordRecord!) })
        let wrapped = WrappedKey.wrap(
            nodeKey, under: linkKey, context: context(linkId: linkId, nodeId: nodeId), nonce: random(AESGCMKey.nonceSize))
        return (LinkRecord(linkId: linkId, nodeId: nodeId, wrappedNodeKey: wrapped, password: passwordRecord), secret)
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

    /// Reads the record text a server returned (`link.record`): `unsupportedVersion` for a
    /// version this client does not know, `invalidArgument` for anything malformed.
    public static func decodeRecord(_ text: String) throws(EncryptionError) -> LinkRecord {
        do {
            return try JSONDecoder().decode(LinkRecord.self, from: Data(text.utf8))
        } catch let error as EncryptionError {
            throw error
        } catch {
            throw EncryptionError(.invalidArgument, "malformed link record: \(error)")
        }
    }

    /// Opens the node key of a link. A wrong secret or password is `decryptionFailed`; a
    /// missing password for a protected link is `passwordRequired`.
    public static func open(_ record: LinkRecord, secret: [UInt8], password: String? = nil) throws(EncryptionError) -> SecretKey {
        var stretched: (String, LinkPassword)?
        if let protection = record.password {
            guard let password else { throw EncryptionError(.passwordRequired, "this link needs a password") }
            stretched = (password, protection)
        }
        let linkKey = try deriveLinkKey(linkId: record.linkId, secret: secret, password: stretched)
        return try record.wrappedNodeKey.unwrap(under: linkKey, context: context(linkId: record.linkId, nodeId: record.nodeId))
    }

    static func context(linkId: String, nodeId: String) -> WrapContext {
        WrapContext(type: "link", owner: linkId, subject: nodeId)
    }

    /// A password as the KDF reads it: Unicode NFC, then UTF-8 (so the same password typed on
    /// any system, or in a browser, gives the same bytes).
    static func passwordBytes(_ password: String) -> [UInt8] {
        Array(password.precomposedStringWithCanonicalMapping.utf8)
    }

    /// HKDF-SHA256(secret || PBKDF2(password), salt = link id text, info "coffre/v1/link").
    ///
    /// The password is mixed with the secret, never used alone: a leaked record with a weak
    /// password still needs the 256-bit secret.
    static func deriveLinkKey(
        linkId: String, secret: [UInt8], password: (String, LinkPassword)?
    ) throws(EncryptionError) -> SecretKey {
        guard secret.count == secretSize else { throw .decryptionFailed }
        var material = secret
        if let (text, protection) = password { material += try protection.stretch(text) }
        return try SecretKey(bytes: hkdfSHA256(key: material, salt: Array(linkId.utf8), info: Array("coffre/v1/\(KeyPurpose.link.rawValue)".utf8), count: 32))
    }
}
