import CCryptoBoringSSL
import CoffreModel

/// AES-256-GCM over caller-owned buffers, through BoringSSL's `EVP_AEAD` interface.
///
/// Why not swift-crypto's `AES.GCM`: its public API sets up a new cipher context for every
/// call and returns fresh `Data` for ciphertext and tag, which costs more than the cipher
/// itself on 64 KiB chunks (4.7 GB/s against 17 GB/s on this machine; see
/// Docs/performance.md). This wrapper keeps one context per key and writes into the
/// caller's memory, so the file format runs at the primitive's speed.
///
/// The BoringSSL copy is the one swift-crypto builds (module `CCryptoBoringSSL`, symbols
/// prefixed, so it coexists with the system's libcrypto and swift-nio-ssl's copy). It carries
/// the VAES/AVX-512 GCM code. Only this module touches it (here and in `PBKDF2.swift`).
///
/// A `AESGCMKey` may be used from many threads at once: BoringSSL's AEAD context is read-only
/// after initialisation.
public final class AESGCMKey: @unchecked Sendable {
    /// Key length in bytes (AES-256).
    public static let keySize = 32
    /// Nonce length in bytes (96 bits, GCM's native size).
    public static let nonceSize = 12
    /// Tag length in bytes (128 bits, never truncated).
    public static let tagSize = 16

    private let context: UnsafeMutablePointer<EVP_AEAD_CTX>

    /// Creates a cipher context for a 32-byte key.
    public init(key: [UInt8]) throws(AESGCMError) {
        guard key.count == Self.keySize else {
            throw AESGCMError(.invalidArgument, "AES-256-GCM key must be 32 bytes, got \(key.count)")
        }
        guard
            let context = CCryptoBoringSSL_EVP_AEAD_CTX_new(
                CCryptoBoringSSL_EVP_aead_aes_256_gcm(),
                key,
                key.count,
                Self.tagSize)
        else {
            throw AESGCMError(.cryptoFailure, "EVP_AEAD_CTX_new failed")
        }
        self.context = context
    }

    deinit {
        CCryptoBoringSSL_EVP_AEAD_CTX_free(context)
    }

    /// Encrypts `plaintext` into `output`, which receives ciphertext then tag.
    ///
    /// - Parameters:
    ///   - output: at least `plaintext.count + tagSize` bytes; may be the same memory as
    ///     `plaintext` (in-place), never partially overlapping it.
    /// - Returns: bytes written (`plaintext.count + tagSize`).
    @discardableResult
    public func seal(
        _ plaintext: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        authenticating associatedData: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        into output: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(nonce.count == Self.nonceSize, "AES-GCM nonce must be 12 bytes")
        precondition(output.count >= plaintext.count + Self.tagSize, "output too small")
        var written = 0
        let status = CCryptoBoringSSL_EVP_AEAD_CTX_seal(
            context,
            output.baseAddress?.assumingMemoryBound(to: UInt8.self), &written, output.count,
            nonce.baseAddress?.assumingMemoryBound(to: UInt8.self), nonce.count,
            plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), plaintext.count,
            associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), associatedData.count)
        // Sealing fails only on a programming error (sizes are checked above).
        precondition(status == 1, "EVP_AEAD_CTX_seal failed")
        return written
    }

    /// Decrypts and authenticates `sealed` (ciphertext then tag) into `output`.
    ///
    /// On failure nothing of the plaintext is usable: `output` is cleared before throwing.
    /// - Returns: plaintext bytes written (`sealed.count - tagSize`).
    @discardableResult
    public func open(
        _ sealed: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        authenticating associatedData: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        into output: UnsafeMutableRawBufferPointer
    ) throws(AESGCMError) -> Int {
        precondition(nonce.count == Self.nonceSize, "AES-GCM nonce must be 12 bytes")
        guard sealed.count >= Self.tagSize else {
            throw AESGCMError(.decryptionFailed, "sealed message shorter than a tag")
        }
        precondition(output.count >= sealed.count - Self.tagSize, "output too small")
        var written = 0
        let status = CCryptoBoringSSL_EVP_AEAD_CTX_open(
            context,
            output.baseAddress?.assumingMemoryBound(to: UInt8.self), &written, output.count,
            nonce.baseAddress?.assumingMemoryBound(to: UInt8.self), nonce.count,
            sealed.baseAddress?.assumingMemoryBound(to: UInt8.self), sealed.count,
            associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), associatedData.count)
        guard status == 1 else {
            CCryptoBoringSSL_ERR_clear_error()
            if let base = output.baseAddress {
                base.initializeMemory(as: UInt8.self, repeating: 0, count: sealed.count - Self.tagSize)
            }
            throw AESGCMError(.decryptionFailed, "authentication failed")
        }
        return written
    }
}

extension AESGCMKey {
    /// Seals a small message into a new array (ciphertext then tag); for keys and attributes.
    public func seal(_ plaintext: [UInt8], nonce: [UInt8], authenticating associatedData: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: plaintext.count + Self.tagSize)
        plaintext.withUnsafeBytes { p in
            nonce.withUnsafeBytes { n in
                associatedData.withUnsafeBytes { a in
                    output.withUnsafeMutableBytes { o in
                        _ = seal(p, nonce: n, authenticating: a, into: o)
                    }
                }
            }
        }
        return output
    }

    /// Opens a small sealed message into a new array.
    public func open(
        _ sealed: [UInt8], nonce: [UInt8], authenticating associatedData: [UInt8]
    ) throws(AESGCMError) -> [UInt8] {
        guard sealed.count >= Self.tagSize else {
            throw AESGCMError(.decryptionFailed, "sealed message shorter than a tag")
        }
        var output = [UInt8](repeating: 0, count: sealed.count - Self.tagSize)
        try withBytes(of: sealed) { s throws(AESGCMError) in
            try withBytes(of: nonce) { n throws(AESGCMError) in
                try withBytes(of: associatedData) { a throws(AESGCMError) in
                    _ = try withMutableBytes(of: &output) { o throws(AESGCMError) in
                        try open(s, nonce: n, authenticating: a, into: o)
                    }
                }
            }
        }
        return output
    }
}

/// Fills `buffer` with bytes from BoringSSL's CSPRNG (getrandom on Linux).
public func secureRandomFill(_ buffer: UnsafeMutableRawBufferPointer) {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return }
    let status = CCryptoBoringSSL_RAND_bytes(base.assumingMemoryBound(to: UInt8.self), buffer.count)
    precondition(status == 1, "RAND_bytes failed")
}

/// Returns `count` bytes from the CSPRNG.
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { secureRandomFill($0) }
    return bytes
}
