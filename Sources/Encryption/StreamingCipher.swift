/// Pull-based encryption and push-based decryption of whole files, for network transfers.
import CoffreModel

/// Produces the encrypted form of a plaintext stream piece by piece, pulling plaintext only
/// when asked: a slow network never makes it read ahead (constant memory, one piece).
///
/// Plaintext is read into one buffer kept for the whole file and sealed straight into the
/// caller's memory: no allocation per piece (fresh memory costs a page fault per 4 KiB on
/// the project's machines, Docs/performance.md).
public struct EncryptingReader: Sendable {
    /// Plaintext per piece: four chunks (256 KiB), small enough that TLS's output buffer for
    /// it stays in reused memory (see `Limits.networkWriteSizeMax`).
    public static let batch = 4 * FileFormat.chunkSize
    /// Largest piece `next(into:read:)` produces: room the caller must give it.
    public static let pieceSizeMax = max(FileFormat.headerSize, FileEncryptor.sealedLength(plaintextCount: batch, isFinal: true))

    private var encryptor: FileEncryptor
    /// Plaintext read but not sealed yet: `batch` bytes and one more, which tells whether
    /// the batch ends the file.
    private var plain: [UInt8]
    private var plainCount = 0
    private var sentHeader = false
    private var finished = false

    public init(fileKey: FileKey, salt: [UInt8]? = nil) throws(EncryptionError) {
        encryptor = try FileEncryptor(fileKey: fileKey, salt: salt)
        plain = [UInt8](repeating: 0, count: Self.batch + 1)
    }

    /// Writes the next piece of ciphertext into `output` (at least `pieceSizeMax` bytes) and
    /// returns its length; 0 at the end.
    ///
    /// - Parameter read: fills a buffer with plaintext, returning the count (0 at the end).
    public mutating func next(
        into output: UnsafeMutableRawBufferPointer, read: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> Int {
        precondition(output.count >= Self.pieceSizeMax, "output smaller than EncryptingReader.pieceSizeMax")
        if !sentHeader {
            sentHeader = true
            let header = encryptor.header.bytes
            output.copyBytes(from: header)
            return header.count
        }
        guard !finished else { return 0 }
        let filled = plainCount
        plainCount += try plain.withUnsafeMutableBytes { try readFully(read, into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...])) }
        let isFinal = plainCount <= Self.batch
        let take = isFinal ? plainCount : Self.batch
        let count = plain.withUnsafeBytes { encryptor.seal(UnsafeRawBufferPointer(rebasing: $0[..<take]), isFinal: isFinal, into: output) }
        if !isFinal { plain[0] = plain[Self.batch] }
        plainCount -= take
        finished = isFinal
        return count
    }

    /// The next piece of ciphertext as a new array, or nil at the end.
    public mutating func next(read: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: Self.pieceSizeMax)
        let count = try out.withUnsafeMutableBytes { try next(into: $0, read: read) }
        guard count > 0 else { return nil }
        out.removeLast(out.count - count)
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
