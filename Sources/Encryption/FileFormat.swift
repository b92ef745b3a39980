import AESGCM
import CoffreModel
import Crypto

/// Coffre's encrypted file format, version 1: STREAM over AES-256-GCM.
///
/// Specified byte by byte in Docs/format.md; this type holds its constants and size rules.
/// In short: a 76-byte header (magic, version, suite, chunk size, random salt, HMAC-SHA256 of
/// the rest under a key derived from the file key), then chunks of 64 KiB of plaintext, each
/// sealed with AES-256-GCM under a payload key HKDF'd from the file key and the salt. The
/// nonce is the chunk number (88 bits, big-endian) and a last-chunk flag byte, so chunks can
/// be neither reordered, dropped, nor cut after, and any one chunk can be opened alone.
///
/// The design follows age's payload format (C2SP age spec, "Payload") and the STREAM
/// construction of Hoang, Reyhanitabar, Rogaway and Vizár (CRYPTO 2015). It departs from age
/// in the cipher (AES-256-GCM instead of ChaCha20-Poly1305, for VAES speed and WebCrypto
/// support) and in the header, which carries the salt and chunk size itself.
public enum FileFormat {
    /// "COFFRE" in ASCII.
    public static let magic: [UInt8] = Array("COFFRE".utf8)
    public static let version: UInt8 = 1
    /// Suite 1: AES-256-GCM, HKDF-SHA256, HMAC-SHA256.
    public static let suite: UInt8 = 1
    public static let chunkSize = Limits.formatChunkSize
    public static let saltSize = 32
    public static let macSize = 32
    /// magic 6 + version 1 + suite 1 + chunk size 4 + salt 32 + MAC 32.
    public static let headerSize = 76
    public static let tagSize = AESGCMKey.tagSize
    /// A sealed full chunk: 64 KiB + 16.
    public static let sealedChunkSize = chunkSize + tagSize
    public static let fileKeySize = 32

    static let headerInfo = Array("coffre/v1/header".utf8)
    static let payloadInfo = Array("coffre/v1/payload".utf8)

    /// Number of chunks of a plaintext of `length` bytes: at least one (an empty file has one
    /// empty final chunk).
    public static func chunkCount(plaintextLength length: UInt64) -> UInt64 {
        max(1, (length + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }

    /// Bytes of the encrypted file for `length` bytes of plaintext.
    public static func ciphertextLength(plaintextLength length: UInt64) -> UInt64 {
        UInt64(headerSize) + length + chunkCount(plaintextLength: length) * UInt64(tagSize)
    }

    /// Bytes of plaintext in an encrypted file of `length` bytes, or nil when no plaintext
    /// length produces that size (the file is truncated or padded).
    public static func plaintextLength(ciphertextLength length: UInt64) -> UInt64? {
        guard length >= UInt64(headerSize + tagSize) else { return nil }
        let payload = length - UInt64(headerSize)
        let fullChunks = payload / UInt64(sealedChunkSize)
        let rest = payload % UInt64(sealedChunkSize)
        if rest == 0 { return fullChunks * UInt64(chunkSize) }
        // A partial final chunk holds at least its tag; an empty final chunk is allowed
        // only as the first and only chunk.
        guard rest >= UInt64(tagSize), rest > UInt64(tagSize) || fullChunks == 0 else { return nil }
        return fullChunks * UInt64(chunkSize) + rest - UInt64(tagSize)
    }

    /// The 12-byte nonce of chunk `index`: 11 bytes of big-endian counter, then 0x01 for the
    /// final chunk or 0x00 for any other.
    static func writeNonce(index: UInt64, isLast: Bool, into nonce: UnsafeMutableRawBufferPointer) {
        precondition(nonce.count == AESGCMKey.nonceSize)
        for i in 0..<11 {
            let shift = (10 - i) * 8
            nonce[i] = shift >= 64 ? 0 : UInt8(truncatingIfNeeded: index >> UInt64(shift))
        }
        nonce[11] = isLast ? 1 : 0
    }
}

/// A file key: 32 random bytes, fresh for every file version, never derived from content.
public struct FileKey: Sendable, Hashable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(EncryptionError) {
        guard bytes.count == FileFormat.fileKeySize else {
            throw EncryptionError(.invalidArgument, "a file key is 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// A new random key.
    public static func random() -> FileKey {
        try! FileKey(bytes: secureRandomBytes(FileFormat.fileKeySize))
    }

    func derive(salt: [UInt8], info: [UInt8]) -> [UInt8] {
        hkdfSHA256(key: bytes, salt: salt, info: info, count: 32)
    }
}

/// HKDF-SHA256 (RFC 5869) through swift-crypto.
func hkdfSHA256(key: [UInt8], salt: [UInt8], info: [UInt8], count: Int) -> [UInt8] {
    let derived = HKDF<SHA256>.deriveKey(
        inputKeyMaterial: SymmetricKey(data: key), salt: salt, info: info, outputByteCount: count)
    return derived.withUnsafeBytes { Array($0) }
}

/// HMAC-SHA256 through swift-crypto.
func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
    Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
}

/// Constant-time equality of two byte strings of public length.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in 0..<a.count { difference |= a[i] ^ b[i] }
    return difference == 0
}
