import AESGCM
import CoffreModel

/// Decrypts a v1 file, chunk by chunk, in constant memory; or any single chunk alone.
///
/// Every failure is `EncryptionError.decryptionFailed`. A chunk's plaintext is released only
/// after its tag verifies; on failure the output of that chunk is zeroed and the decryptor
/// refuses further work. Earlier chunks were authentic, but a stream is only whole once the
/// final call succeeds: callers that must not act on a partial file write to a temporary
/// place and move it when decryption finishes.
public struct FileDecryptor: Sendable {
    public let header: FileHeader
    private let cipher: AESGCMKey
    private var nextChunk: UInt64 = 0
    private var state = State.open

    private enum State { case open, finished, failed }

    /// Authenticates the header (the first 76 bytes of the file) under `fileKey`.
    public init(fileKey: FileKey, header: UnsafeRawBufferPointer) throws(EncryptionError) {
        self.header = try FileHeader(parsing: header, fileKey: fileKey)
        cipher = self.header.payloadCipher(fileKey: fileKey)
    }

    /// Opens the next chunks of the file.
    ///
    /// - Parameters:
    ///   - sealed: when `isFinal` is false, a whole number of sealed 64 KiB chunks
    ///     (65 552 bytes each); when true, everything left in the file.
    ///   - output: at least `sealed.count` bytes (plaintext is smaller by the tags).
    /// - Returns: plaintext bytes written.
    public mutating func open(
        _ sealed: UnsafeRawBufferPointer, isFinal: Bool, into output: UnsafeMutableRawBufferPointer
    ) throws(EncryptionError) -> Int {
        guard state == .open else { throw .decryptionFailed }
        precondition(output.count >= sealed.count, "output too small")
        let size = FileFormat.sealedChunkSize
        if !isFinal {
            guard sealed.count % size == 0 else { state = .failed; throw .decryptionFailed }
        } else {
            // The final chunk holds 1...64 KiB of plaintext, or none if it is the only chunk.
            let rest = sealed.count % size
            let isOnlyChunk = nextChunk == 0 && sealed.count <= size
            guard sealed.count > 0, rest == 0 || rest > FileFormat.tagSize || (rest == FileFormat.tagSize && isOnlyChunk) else {
                state = .failed
                throw .decryptionFailed
            }
        }
        var read = 0
        var written = 0
        while read < sealed.count {
            let count = min(size, sealed.count - read)
            let isLast = isFinal && read + count == sealed.count
            do {
                written += try Self.openChunk(
                    cipher: cipher, index: nextChunk, isLast: isLast,
                    sealed: UnsafeRawBufferPointer(rebasing: sealed[read..<(read + count)]),
                    into: UnsafeMutableRawBufferPointer(rebasing: output[written...]))
            } catch {
                state = .failed
                throw error
            }
            nextChunk += 1
            read += count
        }
        if isFinal { state = .finished }
        return written
    }

    /// Opens chunk `index` of a file whose ciphertext is `ciphertextLength` bytes long
    /// (header included): the random access behind range reads.
    ///
    /// - Parameter sealed: the chunk's bytes, at offset `76 + index * 65552`.
    /// - Returns: plaintext bytes written.
    public func openChunk(
        index: UInt64, ciphertextLength: UInt64, sealed: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws(EncryptionError) -> Int {
        guard let plaintextLength = FileFormat.plaintextLength(ciphertextLength: ciphertextLength) else {
            throw .decryptionFailed
        }
        let count = FileFormat.chunkCount(plaintextLength: plaintextLength)
        guard index < count else { throw .decryptionFailed }
        return try Self.openChunk(
            cipher: cipher, index: index, isLast: index == count - 1, sealed: sealed, into: output)
    }

    private static func openChunk(
        cipher: AESGCMKey, index: UInt64, isLast: Bool, sealed: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws(EncryptionError) -> Int {
        // Non-final chunks are exactly full; a short one means truncation or splicing.
        guard sealed.count >= FileFormat.tagSize, isLast || sealed.count == FileFormat.sealedChunkSize else {
            throw .decryptionFailed
        }
        var nonce = (0 as UInt64, 0 as UInt32)
        return try withUnsafeMutableBytes(of: &nonce) { n throws(EncryptionError) in
            FileFormat.writeNonce(index: index, isLast: isLast, into: n)
            do {
                return try cipher.open(sealed, nonce: UnsafeRawBufferPointer(n), into: output)
            } catch {
                throw .decryptionFailed
            }
        }
    }

    /// Decrypts a whole stream (header first) through a 1 MiB buffer.
    ///
    /// - Parameters:
    ///   - read: fills the buffer it is given and returns the byte count; 0 means the end.
    ///   - write: takes plaintext (valid only during the call); see the type's note on
    ///     partial output.
    public static func decrypt(
        fileKey: FileKey,
        read: (UnsafeMutableRawBufferPointer) throws -> Int,
        write: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var headerBytes = [UInt8](repeating: 0, count: FileFormat.headerSize)
        let headerCount = try headerBytes.withUnsafeMutableBytes { try readFully(read, into: $0) }
        guard headerCount == FileFormat.headerSize else { throw EncryptionError.decryptionFailed }
        var decryptor = try headerBytes.withUnsafeBytes { bytes throws(EncryptionError) in
            try FileDecryptor(fileKey: fileKey, header: bytes)
        }
        let chunks = 16
        let size = FileFormat.sealedChunkSize
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunks * size, alignment: 64)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunks * size, alignment: 64)
        defer {
            input.deallocate()
            output.deallocate()
        }
        var filled = 0
        while true {
            filled += try readFully(read, into: UnsafeMutableRawBufferPointer(rebasing: input[filled...]))
            if filled < input.count {
                let count = try decryptor.open(UnsafeRawBufferPointer(rebasing: input[..<filled]), isFinal: true, into: output)
                try write(UnsafeRawBufferPointer(rebasing: output[..<count]))
                return
            }
            let openable = input.count - size
            let count = try decryptor.open(UnsafeRawBufferPointer(rebasing: input[..<openable]), isFinal: false, into: output)
            try write(UnsafeRawBufferPointer(rebasing: output[..<count]))
            input.baseAddress!.copyMemory(from: input.baseAddress! + openable, byteCount: size)
            filled = size
        }
    }
}

extension FileEncryptor {
    /// Encrypts a whole file held in memory (tests, small files).
    public static func encrypt(_ plaintext: [UInt8], fileKey: FileKey, salt: [UInt8]? = nil) throws(EncryptionError) -> [UInt8] {
        var encryptor = try FileEncryptor(fileKey: fileKey, salt: salt)
        var out = encryptor.header.bytes
        let body = plaintext.withUnsafeBytes { p in
            var sealed = [UInt8](repeating: 0, count: sealedLength(plaintextCount: p.count, isFinal: true))
            let count = sealed.withUnsafeMutableBytes { encryptor.seal(p, isFinal: true, into: $0) }
            precondition(count == sealed.count)
            return sealed
        }
        out += body
        return out
    }
}

extension FileDecryptor {
    /// Decrypts a whole file held in memory (tests, small files).
    public static func decrypt(_ ciphertext: [UInt8], fileKey: FileKey) throws(EncryptionError) -> [UInt8] {
        guard ciphertext.count >= FileFormat.headerSize else { throw .decryptionFailed }
        return try withBytes(of: ciphertext) { all throws(EncryptionError) in
            var decryptor = try FileDecryptor(
                fileKey: fileKey, header: UnsafeRawBufferPointer(rebasing: all[..<FileFormat.headerSize]))
            let sealed = UnsafeRawBufferPointer(rebasing: all[FileFormat.headerSize...])
            var plaintext = [UInt8](repeating: 0, count: sealed.count)
            let count = try withMutableBytes(of: &plaintext) { out throws(EncryptionError) in
                try decryptor.open(sealed, isFinal: true, into: out)
            }
            plaintext.removeLast(plaintext.count - count)
            return plaintext
        }
    }
}
