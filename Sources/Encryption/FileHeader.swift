import AESGCM

/// The 76-byte header of a v1 file and the payload cipher it leads to.
///
/// The header MAC is checked before any chunk is opened. Because its key is derived from the
/// file key, a valid MAC also shows the reader holds the right key (key commitment): a
/// ciphertext cannot be made to decrypt under two different keys.
public struct FileHeader: Sendable {
    public let salt: [UInt8]
    /// The encoded header, MAC included.
    public let bytes: [UInt8]

    /// A header for `fileKey` with the given salt (random unless testing).
    public init(fileKey: FileKey, salt: [UInt8]) throws(EncryptionError) {
        guard salt.count == FileFormat.saltSize else {
            throw EncryptionError(.invalidArgument, "header salt is 32 bytes, got \(salt.count)")
        }
        var body = FileFormat.magic
        body.append(FileFormat.version)
        body.append(FileFormat.suite)
        let size = UInt32(FileFormat.chunkSize)
        body += [UInt8(size >> 24), UInt8(truncatingIfNeeded: size >> 16), UInt8(truncatingIfNeeded: size >> 8), UInt8(truncatingIfNeeded: size)]
        body += salt
        let macKey = fileKey.derive(salt: [], info: FileFormat.headerInfo)
        self.salt = salt
        self.bytes = body + hmacSHA256(key: macKey, message: body)
    }

    /// Parses and authenticates a header.
    ///
    /// Every failure (short input, wrong magic, unknown version or suite, other chunk size,
    /// bad MAC, wrong key) is the same `EncryptionError.decryptionFailed`.
    public init(parsing header: UnsafeRawBufferPointer, fileKey: FileKey) throws(EncryptionError) {
        guard header.count == FileFormat.headerSize else { throw .decryptionFailed }
        let bytes = Array(header)
        let salt = Array(bytes[12..<44])
        guard let expected = try? FileHeader(fileKey: fileKey, salt: salt) else { throw .decryptionFailed }
        // Comparing the whole encoding checks magic, version, suite and chunk size as well
        // as the MAC, in constant time.
        guard constantTimeEqual(expected.bytes, bytes) else { throw .decryptionFailed }
        self = expected
    }

    /// The AES-256-GCM context for the chunks of this file.
    func payloadCipher(fileKey: FileKey) -> AESGCMKey {
        var key = fileKey.derive(salt: salt, info: FileFormat.payloadInfo)
        defer { for i in key.indices { key[i] = 0 } }
        return try! AESGCMKey(key: key)
    }
}
