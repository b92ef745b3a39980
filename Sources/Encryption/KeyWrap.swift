import AESGCM
import CoffreModel

/// What a wrapped key is bound to: its type, its owner and its subject.
///
/// All three enter the AEAD's associated data, so a wrapped key copied to another place
/// (another node, another account, another role) fails to unwrap there.
public struct WrapContext: Hashable, Sendable {
    public var type: String
    public var owner: String
    public var subject: String

    public init(type: String, owner: String, subject: String) {
        self.type = type
        self.owner = owner
        self.subject = subject
    }

    var associatedData: [UInt8] { encodeFields("coffre/v1/wrap", type, owner, subject) }
}

/// A key sealed under another key: version 0x01, 12-byte random nonce, 32 bytes of
/// ciphertext, 16-byte tag (61 bytes), AES-256-GCM under the wrapping key's `keyWrapping`
/// subkey.
public struct WrappedKey: Hashable, Sendable, Codable {
    public static let size = 61
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(EncryptionError) {
        guard bytes.count == Self.size, bytes[0] == 1 else {
            throw EncryptionError(.invalidArgument, "a wrapped key is 61 bytes starting with 0x01, got \(bytes.count) bytes")
        }
        self.bytes = bytes
    }

    enum CodingKeys: String, CodingKey { case bytes }

    /// Decoding checks the size and version as `init(bytes:)` does: a record from a server
    /// (key records, links) must not carry a wrapped key that `unwrap` would read past.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        do { try self.init(bytes: try container.decode([UInt8].self, forKey: .bytes)) } catch let error as EncryptionError {
            throw DecodingError.dataCorruptedError(forKey: .bytes, in: container, debugDescription: error.message)
        }
    }

    /// Seals `key` under `wrappingKey`, bound to `context`.
    public static func wrap(_ key: SecretKey, under wrappingKey: SecretKey, context: WrapContext) -> WrappedKey {
        wrap(key, under: wrappingKey, context: context, nonce: secureRandomBytes(AESGCMKey.nonceSize))
    }

    /// Seals with a given nonce: for vectors, and for callers that draw their randomness from
    /// one source. A nonce must never repeat under one wrapping key.
    static func wrap(_ key: SecretKey, under wrappingKey: SecretKey, context: WrapContext, nonce: [UInt8]) -> WrappedKey {
        precondition(nonce.count == AESGCMKey.nonceSize, "a wrap nonce is 12 bytes")
        let cipher = try! AESGCMKey(key: wrappingKey.derive(.keyWrapping).bytes)
        let sealed = cipher.seal(key.bytes, nonce: nonce, authenticating: context.associatedData)
        return try! WrappedKey(bytes: [1] + nonce + sealed)
    }

    /// Opens the wrapped key; fails with `decryptionFailed` under a wrong key or context.
    public func unwrap(under wrappingKey: SecretKey, context: WrapContext) throws(EncryptionError) -> SecretKey {
        let cipher = try! AESGCMKey(key: wrappingKey.derive(.keyWrapping).bytes)
        let nonce = Array(bytes[1..<13])
        guard let key = try? cipher.open(Array(bytes[13...]), nonce: nonce, authenticating: context.associatedData) else {
            throw .decryptionFailed
        }
        return try SecretKey(bytes: key)
    }
}
