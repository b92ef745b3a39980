import AESGCM
import CoffreModel
import Crypto
import Foundation

/// An account's public keys: Ed25519 to check its signatures, X25519 to share keys with it.
public struct PublicIdentity: Hashable, Sendable, Codable {
    public let signingKey: [UInt8]
    public let agreementKey: [UInt8]

    public init(signingKey: [UInt8], agreementKey: [UInt8]) throws(EncryptionError) {
        guard signingKey.count == 32, agreementKey.count == 32 else {
            throw EncryptionError(.invalidArgument, "public keys are 32 bytes each")
        }
        self.signingKey = signingKey
        self.agreementKey = agreementKey
    }

    enum CodingKeys: String, CodingKey { case signingKey, agreementKey }

    /// Decoding checks the key sizes as `init(signingKey:agreementKey:)` does.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(
                signingKey: try container.decode([UInt8].self, forKey: .signingKey),
                agreementKey: try container.decode([UInt8].self, forKey: .agreementKey))
        } catch let error as EncryptionError {
            throw DecodingError.dataCorruptedError(forKey: .signingKey, in: container, debugDescription: error.message)
        }
    }

    /// What people compare to know they hold the same keys: SHA-256 of both keys (in
    /// `Fields`), its first 16 bytes in hex, in eight groups of four.
    public var fingerprint: String {
        let digest = sha256(encodeFields([Array("coffre/v1/fingerprint".utf8), signingKey, agreementKey]))
        let hex = digest.prefix(16).map { String(format: "%02x", $0) }.joined()
        return stride(from: 0, to: hex.count, by: 4).map { offset in
            let start = hex.index(hex.startIndex, offsetBy: offset)
            return String(hex[start..<hex.index(start, offsetBy: 4)])
        }.joined(separator: " ")
    }

    /// Checks an Ed25519 signature made by `Identity.sign(_:context:)`.
    public func verify(_ signature: [UInt8], of message: [UInt8], context: String) throws(EncryptionError) {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: signingKey),
            key.isValidSignature(signature, for: Identity.signedBytes(message, context: context))
        else {
            throw EncryptionError(.signatureInvalid, "signature does not verify for \(context)")
        }
    }
}

/// An account's private key pairs, derived from its master key (nothing more to store).
public struct Identity: Sendable {
    let signing: Curve25519.Signing.PrivateKey
    let agreement: Curve25519.KeyAgreement.PrivateKey

    public init(masterKey: SecretKey) {
        signing = try! Curve25519.Signing.PrivateKey(rawRepresentation: masterKey.derive(.signing).bytes)
        agreement = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: masterKey.derive(.sharing).bytes)
    }

    public var publicIdentity: PublicIdentity {
        try! PublicIdentity(
            signingKey: Array(signing.publicKey.rawRepresentation),
            agreementKey: Array(agreement.publicKey.rawRepresentation))
    }

    /// Signs `message` for one `context` ("node-record", "share", ...): a signature made for
    /// one context never verifies in another.
    public func sign(_ message: [UInt8], context: String) -> [UInt8] {
        Array(try! signing.signature(for: Self.signedBytes(message, context: context)))
    }

    static func signedBytes(_ message: [UInt8], context: String) -> [UInt8] {
        encodeFields([Array("coffre/v1/signature".utf8), Array(context.utf8), message])
    }
}

/// A node key sealed to another user: HPKE (RFC 9180, base mode, X25519 + HKDF-SHA256 +
/// AES-256-GCM) to the recipient's X25519 key, signed by the sender's Ed25519 key.
public struct SealedShare: Hashable, Sendable, Codable {
    public let encapsulatedKey: [UInt8]
    public let ciphertext: [UInt8]
    public let signature: [UInt8]

    /// A sealed share as it travels: 32 bytes of encapsulated key, 48 of ciphertext (the
    /// 32-byte key and its tag), a 64-byte signature.
    public init(encapsulatedKey: [UInt8], ciphertext: [UInt8], signature: [UInt8]) throws(EncryptionError) {
        guard encapsulatedKey.count == 32, ciphertext.count == 48, signature.count == 64 else {
            throw EncryptionError(.signatureInvalid, "a sealed share is 32 + 48 + 64 bytes, got \(encapsulatedKey.count) + \(ciphertext.count) + \(signature.count)")
        }
        self.encapsulatedKey = encapsulatedKey
        self.ciphertext = ciphertext
        self.signature = signature
    }
}

/// Sharing a node with another user.
public enum UserShare {
    static let suite = HPKE.Ciphersuite(kem: .Curve25519_HKDF_SHA256, kdf: .HKDF_SHA256, aead: .AES_GCM_256)

    static func info(sender: String, recipient: String, nodeId: String) -> [UInt8] {
        encodeFields("coffre/v1/share", sender, recipient, nodeId)
    }

    /// Seals `nodeKey` for `recipient`, whose public identity the sender has pinned.
    public static func seal(
        nodeKey: SecretKey, nodeId: String, from sender: Identity, senderId: String,
        to recipient: PublicIdentity, recipientId: String
    ) throws(EncryptionError) -> SealedShare {
        let info = info(sender: senderId, recipient: recipientId, nodeId: nodeId)
        do {
            let publicKey = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: recipient.agreementKey)
            var hpke = try HPKE.Sender(recipientKey: publicKey, ciphersuite: suite, info: Data(info))
            let ciphertext = Array(try hpke.seal(nodeKey.bytes, authenticating: info))
            let encapsulated = Array(hpke.encapsulatedKey)
            let signature = sender.sign(encodeFields([encapsulated, ciphertext, info]), context: "share")
            return try SealedShare(encapsulatedKey: encapsulated, ciphertext: ciphertext, signature: signature)
        } catch {
            throw EncryptionError(.cryptoFailure, "cannot seal share: \(error)")
        }
    }

    /// Checks the sender's signature, then opens the node key.
    public static func open(
        _ share: SealedShare, nodeId: String, senderId: String, sender: PublicIdentity,
        as recipient: Identity, recipientId: String
    ) throws(EncryptionError) -> SecretKey {
        let info = info(sender: senderId, recipient: recipientId, nodeId: nodeId)
        try sender.verify(share.signature, of: encodeFields([share.encapsulatedKey, share.ciphertext, info]), context: "share")
        guard
            var hpke = try? HPKE.Recipient(
                privateKey: recipient.agreement, ciphersuite: suite, info: Data(info),
                encapsulatedKey: Data(share.encapsulatedKey)),
            let key = try? hpke.open(share.ciphertext, authenticating: info)
        else { throw .decryptionFailed }
        return try SecretKey(bytes: Array(key))
    }
}

func sha256(_ bytes: [UInt8]) -> [UInt8] {
    Array(SHA256.hash(data: bytes))
}
