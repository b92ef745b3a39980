import AESGCM
import CoffreModel

/// A 32-byte secret key of one purpose.
///
/// Keys never serve two roles (the MEGA attacks of 2022-23 exploited exactly that): each
/// use derives its own subkey with HKDF-SHA256 and a purpose label, `derive(_:)`.
public struct SecretKey: Sendable, Hashable {
    public static let size = 32
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(EncryptionError) {
        guard bytes.count == Self.size else {
            throw EncryptionError(.invalidArgument, "a key is 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// A new key from the CSPRNG.
    public static func random() -> SecretKey {
        try! SecretKey(bytes: secureRandomBytes(size))
    }

    /// The subkey for `purpose`: HKDF-SHA256(this key, salt, "coffre/v1/" + purpose).
    public func derive(_ purpose: KeyPurpose, salt: [UInt8] = []) -> SecretKey {
        try! SecretKey(bytes: hkdfSHA256(key: bytes, salt: salt, info: Array("coffre/v1/\(purpose.rawValue)".utf8), count: Self.size))
    }
}

/// The label of a derived key. Each label is used for exactly one kind of operation.
public struct KeyPurpose: Hashable, Sendable {
    public let rawValue: String
    init(_ rawValue: String) { self.rawValue = rawValue }

    /// Password root -> the key whose hash the server keeps to authenticate the account.
    public static let authentication = KeyPurpose("auth")
    /// Password root -> the key that wraps the master key.
    public static let passwordWrapping = KeyPurpose("password-wrap")
    /// Any key -> the AES-GCM key that wraps other keys under it.
    public static let keyWrapping = KeyPurpose("key-wrap")
    /// Node key -> the AES-GCM key of the node's attributes.
    public static let attributes = KeyPurpose("attributes")
    /// Folder key (or the tree root key) -> the HMAC key of its children's name tags.
    public static let nameTags = KeyPurpose("name-tags")
    /// Master key -> the key under which top-level node keys are wrapped.
    public static let treeRoot = KeyPurpose("tree-root")
    /// Master key -> the seed of the account's Ed25519 signing key.
    public static let signing = KeyPurpose("signing-ed25519")
    /// Master key -> the seed of the account's X25519 key for user shares.
    public static let sharing = KeyPurpose("sharing-x25519")
    /// Link secret (+ password) -> the key that wraps the shared node key.
    public static let link = KeyPurpose("link")
}

/// Joins fields into associated data without ambiguity: each is a 4-byte big-endian length
/// followed by its bytes, so ("ab", "c") and ("a", "bc") never collide.
func encodeFields(_ fields: [[UInt8]]) -> [UInt8] {
    var out = [UInt8]()
    for field in fields {
        let n = UInt32(field.count)
        out += [UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
        out += field
    }
    return out
}

func encodeFields(_ fields: String...) -> [UInt8] {
    encodeFields(fields.map { Array($0.utf8) })
}
