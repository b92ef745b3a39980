import AESGCM
import CoffreModel

/// Encrypts a file in the v1 format, chunk by chunk, in constant memory.
///
/// The core call, `seal(_:isFinal:into:)`, works on the caller's buffers with no copy; the
/// `encrypt(fileKey:read:write:)` helper runs a whole stream through a 1 MiB buffer.
public struct FileEncryptor: Sendable {
    public let header: FileHeader
    private let cipher: AESGCMKey
    private var nextChunk: UInt64 = 0
    private var finished = false

    /// Starts a file. The salt is random unless given (test vectors give it).
    public init(fileKey: FileKey, salt: [UInt8]? = nil) throws(EncryptionError) {
        header = try FileHeader(fileKey: fileKey, salt: salt ?? secureRandomBytes(FileFormat.saltSize))
        cipher = header.payloadCipher(fileKey: fileKey)
    }

    /// Bytes `seal` writes for `count` bytes of plaintext.
    public static func sealedLength(plaintextCount count: Int, isFinal: Bool) -> Int {
        let chunks = (count + FileFormat.chunkSize - 1) / FileFormat.chunkSize
        return count + max(chunks, isFinal ? 1 : 0) * FileFormat.tagSize
    }

    /// Seals `plaintext` as the next chunks of the file into `output`.
    ///
    /// - Parameters:
    ///   - plaintext: when `isFinal` is false, a whole number of 64 KiB chunks; when true, the
    ///     rest of the file (any length; empty only if nothing was sealed before).
    ///   - isFinal: the last call for this file; its last chunk gets the final flag.
    ///   - output: at least `sealedLength(plaintextCount:isFinal:)` bytes.
    /// - Returns: bytes written to `output`.
    public mutating func seal(
        _ plaintext: UnsafeRawBufferPointer, isFinal: Bool, into output: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(!finished, "file already finished")
        precondition(
            isFinal || plaintext.count % FileFormat.chunkSize == 0,
            "a non-final call takes whole chunks")
        precondition(plaintext.count > 0 || !isFinal || nextChunk == 0, "empty final chunk after other chunks")
        precondition(output.count >= Self.sealedLength(plaintextCount: plaintext.count, isFinal: isFinal))
        // Callers check sizes against the limit first (an operating error); past it is a bug.
        precondition(
            (nextChunk + UInt64(plaintext.count / FileFormat.chunkSize)) * UInt64(FileFormat.chunkSize) <= Limits.formatPlaintextMax,
            "a file version holds at most \(Limits.formatPlaintextMax) bytes")
        var nonce = (0 as UInt64, 0 as UInt32)
        var read = 0
        var written = 0
        repeat {
            let count = min(FileFormat.chunkSize, plaintext.count - read)
            let isLast = isFinal && read + count == plaintext.count
            withUnsafeMutableBytes(of: &nonce) { n in
                FileFormat.writeNonce(index: nextChunk, isLast: isLast, into: n)
                written += cipher.seal(
                    UnsafeRawBufferPointer(rebasing: plaintext[read..<(read + count)]),
                    nonce: UnsafeRawBufferPointer(n),
                    into: UnsafeMutableRawBufferPointer(rebasing: output[written...]))
            }
            nextChunk += 1
            read += count
        } while read < plaintext.count
        finished = isFinal
        return written
    }

    /// Encrypts a whole stream: the header, then every chunk, through a 1 MiB buffer.
    ///
    /// - Parameters:
    ///   - read: fills the buffer it is given and returns the byte count; 0 means the end.
    ///   - write: takes encrypted bytes (valid only during the call).
    public static func encrypt(
        fileKey: FileKey,
        salt: [UInt8]? = nil,
        read: (UnsafeMutableRawBufferPointer) throws -> Int,
        write: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var encryptor = try FileEncryptor(fileKey: fileKey, salt: salt)
        try encryptor.header.bytes.withUnsafeBytes { try write($0) }
        let chunks = 16
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunks * FileFormat.chunkSize, alignment: 64)
        let output = UnsafeMutableRawBufferPointer.allocate(
            byteCount: chunks * FileFormat.sealedChunkSize, alignment: 64)
        defer {
            input.deallocate()
            output.deallocate()
        }
        var filled = 0
        while true {
            filled += try readFully(read, into: UnsafeMutableRawBufferPointer(rebasing: input[filled...]))
            if filled < input.count {
                let count = encryptor.seal(UnsafeRawBufferPointer(rebasing: input[..<filled]), isFinal: true, into: output)
                try write(UnsafeRawBufferPointer(rebasing: output[..<count]))
                return
            }
            // The buffer is full and more may follow: keep the last chunk back, since it may
            // turn out to be the final one.
            let sealable = input.count - FileFormat.chunkSize
            let count = encryptor.seal(UnsafeRawBufferPointer(rebasing: input[..<sealable]), isFinal: false, into: output)
            try write(UnsafeRawBufferPointer(rebasing: output[..<count]))
            input.baseAddress!.copyMemory(from: input.baseAddress! + sealable, byteCount: FileFormat.chunkSize)
            filled = FileFormat.chunkSize
        }
    }
}

/// Calls `read` until `buffer` is full or it returns 0; returns the bytes read.
func readFully(_ read: (UnsafeMutableRawBufferPointer) throws -> Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    var filled = 0
    while filled < buffer.count {
        let count = try read(UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
        precondition(count >= 0 && count <= buffer.count - filled, "read returned an impossible count")
        if count == 0 { break }
        filled += count
    }
    return filled
}
