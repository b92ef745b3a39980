/// Pull-based encryption and push-based decryption of whole files, for network transfers.
import CoffreModel

/// Produces the encrypted form of a plaintext stream piece by piece, pulling plaintext only
/// when asked: a slow network never makes it read ahead (constant memory, about 2 MiB).
public struct EncryptingReader: Sendable {
    private var encryptor: FileEncryptor
    private var pending: [UInt8] = []
    private var sentHeader = false
    private var finished = false
    /// Plaintext per piece: four chunks (256 KiB), small enough that TLS's output buffer for
    /// it stays in reused memory (see `Limits.networkWriteSizeMax`).
    private let batch = 4 * FileFormat.chunkSize

    public init(fileKey: FileKey, salt: [UInt8]? = nil) throws(EncryptionError) {
        encryptor = try FileEncryptor(fileKey: fileKey, salt: salt)
    }

    /// The next piece of ciphertext, or nil at the end.
    ///
    /// - Parameter read: fills a buffer with plaintext, returning the count (0 at the end).
    public mutating func next(read: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> [UInt8]? {
        if !sentHeader {
            sentHeader = true
            return encryptor.header.bytes
        }
        guard !finished else { return nil }
        // Fill to one batch and one byte more: that byte tells whether the batch is the end.
        let want = batch + 1
        if pending.count < want {
            var buffer = [UInt8](repeating: 0, count: want - pending.count)
            let count = try buffer.withUnsafeMutableBytes { try readFully(read, into: $0) }
            pending += buffer[..<count]
        }
        let isFinal = pending.count <= batch
        let take = isFinal ? pending.count : batch
        var out = [UInt8](repeating: 0, count: FileEncryptor.sealedLength(plaintextCount: take, isFinal: isFinal))
        let count = pending.withUnsafeBytes { p in
            out.withUnsafeMutableBytes { o in encryptor.seal(UnsafeRawBufferPointer(rebasing: p[..<take]), isFinal: isFinal, into: o) }
        }
        precondition(count == out.count)
        pending.removeFirst(take)
        finished = isFinal
        return out
    }
}

/// Decrypts a file arriving in pieces of any size; plaintext comes out chunk by chunk, each
/// only after its tag verifies. The file is whole only when `finish()` succeeds.
public struct DecryptingWriter: Sendable {
    private let fileKey: FileKey
    private var decryptor: FileDecryptor?
    private var pending: [UInt8] = []

    public init(fileKey: FileKey) { self.fileKey = fileKey }

    /// Takes ciphertext; returns the plaintext that can be released so far.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(EncryptionError) -> [UInt8] {
        pending += bytes
        if decryptor == nil {
            guard pending.count >= FileFormat.headerSize else { return [] }
            decryptor = try withBytes(of: Array(pending[..<FileFormat.headerSize])) { h throws(EncryptionError) in
                try FileDecryptor(fileKey: fileKey, header: h)
            }
            pending.removeFirst(FileFormat.headerSize)
        }
        // Keep at least one byte back: the last chunk must be opened as final.
        let chunks = (pending.count - 1) / FileFormat.sealedChunkSize
        guard chunks > 0 else { return [] }
        let take = chunks * FileFormat.sealedChunkSize
        let out = try open(Array(pending[..<take]), isFinal: false)
        pending.removeFirst(take)
        return out
    }

    /// Opens what is left as the final chunk; throws if the file is cut short or damaged.
    public mutating func finish() throws(EncryptionError) -> [UInt8] {
        guard decryptor != nil else { throw .decryptionFailed }
        return try open(pending, isFinal: true)
    }

    private mutating func open(_ sealed: [UInt8], isFinal: Bool) throws(EncryptionError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: sealed.count)
        let count = try withBytes(of: sealed) { s throws(EncryptionError) in
            try withMutableBytes(of: &output) { o throws(EncryptionError) in try decryptor!.open(s, isFinal: isFinal, into: o) }
        }
        output.removeLast(output.count - count)
        return output
    }
}
