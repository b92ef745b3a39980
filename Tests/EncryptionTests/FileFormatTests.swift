import CoffreModel
@testable import Encryption
import Testing
import TestSupport

func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8($0 % 251) } }

let chunk = FileFormat.chunkSize
let sealedChunk = FileFormat.sealedChunkSize
let header = FileFormat.headerSize

@Suite struct FileFormatTests {
    @Test(arguments: [0, 1, 100, chunk - 1, chunk, chunk + 1, 2 * chunk, 3 * chunk + 17, 17 * chunk + 5])
    func roundTrips(length: Int) throws {
        let key = FileKey.random()
        let plaintext = pattern(length)
        let ciphertext = try FileEncryptor.encrypt(plaintext, fileKey: key)
        #expect(UInt64(ciphertext.count) == FileFormat.ciphertextLength(plaintextLength: UInt64(length)))
        #expect(FileFormat.plaintextLength(ciphertextLength: UInt64(ciphertext.count)) == UInt64(length))
        #expect(try FileDecryptor.decrypt(ciphertext, fileKey: key) == plaintext)
    }

    @Test(arguments: [1, 7, 4096, 65_536, 70_000, 1 << 20])
    func streamsInConstantMemoryWithAnyReadSize(readSize: Int) throws {
        let key = FileKey.random()
        let plaintext = pattern(33 * chunk + 999)
        var offset = 0
        var ciphertext: [UInt8] = []
        try FileEncryptor.encrypt(
            fileKey: key,
            read: { buffer in
                let count = min(readSize, buffer.count, plaintext.count - offset)
                plaintext.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
                offset += count
                return count
            },
            write: { ciphertext += $0 })
        #expect(try FileDecryptor.decrypt(ciphertext, fileKey: key) == plaintext)
        offset = 0
        var decrypted: [UInt8] = []
        try FileDecryptor.decrypt(
            fileKey: key,
            read: { buffer in
                let count = min(readSize, buffer.count, ciphertext.count - offset)
                ciphertext.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
                offset += count
                return count
            },
            write: { decrypted += $0 })
        #expect(decrypted == plaintext)
    }

    @Test func anyChunkOpensAlone() throws {
        let key = FileKey.random()
        let plaintext = pattern(5 * chunk + 123)
        let ciphertext = try FileEncryptor.encrypt(plaintext, fileKey: key)
        let decryptor = try ciphertext.withUnsafeBytes { try FileDecryptor(fileKey: key, header: UnsafeRawBufferPointer(rebasing: $0[..<header])) }
        for index in 0..<6 {
            let start = header + index * sealedChunk
            let end = min(start + sealedChunk, ciphertext.count)
            var out = [UInt8](repeating: 0, count: chunk)
            let count = try ciphertext.withUnsafeBytes { c in
                try out.withUnsafeMutableBytes { o in
                    try decryptor.openChunk(index: UInt64(index), ciphertextLength: UInt64(ciphertext.count), sealed: UnsafeRawBufferPointer(rebasing: c[start..<end]), into: o)
                }
            }
            #expect(Array(out[..<count]) == Array(plaintext[(index * chunk)..<min((index + 1) * chunk, plaintext.count)]))
        }
    }

    @Test func ciphertextsOfOneFileDiffer() throws {
        let key = FileKey.random()
        let a = try FileEncryptor.encrypt(pattern(100), fileKey: key)
        let b = try FileEncryptor.encrypt(pattern(100), fileKey: key)
        #expect(a != b, "a fresh salt per encryption gives a fresh payload key")
    }
}

/// Every way of damaging a file must give the one uniform error and release no plaintext of
/// the damaged chunk.
@Suite struct TamperingTests {
    let key = try! FileKey(bytes: [UInt8](repeating: 0x11, count: 32))
    let plaintext = pattern(3 * chunk + 500)
    var ciphertext: [UInt8] { try! FileEncryptor.encrypt(plaintext, fileKey: key, salt: [UInt8](repeating: 0x22, count: 32)) }

    func expectUniformFailure(_ damaged: [UInt8], key: FileKey? = nil, _ comment: Comment) {
        #expect(throws: EncryptionError.decryptionFailed, comment) {
            try FileDecryptor.decrypt(damaged, fileKey: key ?? self.key)
        }
    }

    @Test func flippedBitAnywhere() {
        let positions = [0, 6, 7, 9, 20, 50, header, header + 1000, header + chunk + 3,
                         header + sealedChunk - 1, header + sealedChunk + 5, ciphertext.count - 17, ciphertext.count - 1]
        for position in positions {
            var damaged = ciphertext
            damaged[position] ^= 0x04
            expectUniformFailure(damaged, "bit flipped at \(position)")
        }
    }

    @Test func truncations() {
        let c = ciphertext
        expectUniformFailure(Array(c.prefix(header + 3 * sealedChunk)), "truncated at a chunk boundary")
        expectUniformFailure(Array(c.prefix(header + sealedChunk)), "truncated after the first chunk")
        expectUniformFailure(Array(c.prefix(header + sealedChunk + 100)), "truncated mid-chunk")
        expectUniformFailure(Array(c.prefix(header)), "header only")
        expectUniformFailure(Array(c.prefix(header - 1)), "short header")
        expectUniformFailure([], "empty input")
    }

    @Test func reorderedOrSplicedChunks() throws {
        let c = ciphertext
        let first = Array(c[header..<(header + sealedChunk)])
        let second = Array(c[(header + sealedChunk)..<(header + 2 * sealedChunk)])
        var swapped = Array(c[..<header]) + second + first + Array(c[(header + 2 * sealedChunk)...])
        expectUniformFailure(swapped, "chunks 0 and 1 swapped")
        swapped = Array(c[..<header]) + first + first + Array(c[(header + 2 * sealedChunk)...])
        expectUniformFailure(swapped, "chunk 0 repeated")
        // A chunk from another file under the same key, at the same position.
        let other = try FileEncryptor.encrypt(pattern(3 * chunk + 500).map { $0 ^ 1 }, fileKey: key)
        let spliced = Array(c[..<(header + sealedChunk)]) + Array(other[(header + sealedChunk)..<(header + 2 * sealedChunk)]) + Array(c[(header + 2 * sealedChunk)...])
        expectUniformFailure(spliced, "chunk spliced in from another file")
        // The header of another file with the same key.
        expectUniformFailure(Array(other[..<header]) + Array(c[header...]), "header of another file")
    }

    @Test func trailingGarbageWrongKeyUnknownVersion() throws {
        expectUniformFailure(ciphertext + [0], "one trailing byte")
        expectUniformFailure(ciphertext + [UInt8](repeating: 0, count: sealedChunk), "a trailing chunk of zeros")
        expectUniformFailure(ciphertext, key: FileKey.random(), "wrong key")
        // Version 2 with a valid MAC: a v1 decoder must still refuse it.
        var body = Array(ciphertext[..<44])
        body[6] = 2
        let mac = hmacSHA256(key: key.derive(salt: [], info: FileFormat.headerInfo), message: body)
        expectUniformFailure(body + mac + Array(ciphertext[header...]), "unknown version with a valid MAC")
        var suite = Array(ciphertext[..<44])
        suite[7] = 9
        expectUniformFailure(suite + hmacSHA256(key: key.derive(salt: [], info: FileFormat.headerInfo), message: suite) + Array(ciphertext[header...]), "unknown suite")
    }

    @Test func emptyFinalChunkOnlyForAnEmptyFile() throws {
        // A file of exactly two chunks, re-sealed with an extra empty final chunk: refused.
        let two = pattern(2 * chunk)
        var encryptor = try FileEncryptor(fileKey: key, salt: [UInt8](repeating: 1, count: 32))
        var sealed = [UInt8](repeating: 0, count: 2 * sealedChunk)
        _ = two.withUnsafeBytes { p in sealed.withUnsafeMutableBytes { encryptor.seal(p, isFinal: false, into: $0) } }
        let cipher = encryptor.header.payloadCipher(fileKey: key)
        var nonce = [UInt8](repeating: 0, count: 12)
        nonce[10] = 2
        nonce[11] = 1
        let emptyFinal = cipher.seal([], nonce: nonce, authenticating: [])
        expectUniformFailure(encryptor.header.bytes + sealed + emptyFinal, "empty final chunk after full chunks")
    }

    @Test func noPlaintextOfTheDamagedChunkIsReleased() throws {
        var damaged = ciphertext
        damaged[header + sealedChunk + 10] ^= 1  // inside chunk 1
        var released: [UInt8] = []
        var offset = 0
        #expect(throws: EncryptionError.decryptionFailed) {
            try FileDecryptor.decrypt(
                fileKey: key,
                read: { buffer in
                    let count = min(buffer.count, damaged.count - offset, 1000)
                    damaged.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
                    offset += count
                    return count
                },
                write: { released += $0 })
        }
        // The stream buffers 16 chunks, so nothing at all reaches the caller here; in any
        // case, nothing of chunk 1 or later may.
        #expect(released.count <= chunk)
        #expect(released == Array(plaintext.prefix(released.count)))
    }
}

/// The streaming reader and writer the client uploads and downloads with: byte-identical to
/// the one-shot encryptor (same salt), whatever the read sizes, at the batch boundaries where
/// the one-byte look-ahead decides which piece is final.
@Suite struct StreamingCipherTests {
    static let batch = EncryptingReader.batch

    @Test(arguments: [0, 1, chunk, batch - 1, batch, batch + 1, 2 * batch, 3 * batch + 5])
    func streamsTheSameBytesAsTheOneShotEncryptor(length: Int) throws {
        let key = FileKey.random()
        let salt = [UInt8](repeating: 9, count: FileFormat.saltSize)
        let plaintext = pattern(length)
        var reader = try EncryptingReader(fileKey: key, salt: salt)
        var offset = 0
        var readSize = 1
        var streamed: [UInt8] = []
        var pieces = 0
        while let piece = try reader.next(read: { buffer in
            // Short reads of varying size, as a file or a pipe gives them.
            let count = min(buffer.count, readSize, plaintext.count - offset)
            buffer.copyBytes(from: plaintext[offset..<(offset + count)])
            offset += count
            readSize = readSize * 7 % 100_003 + 1
            return count
        }) {
            #expect(piece.count <= EncryptingReader.pieceSizeMax)
            streamed += piece
            pieces += 1
        }
        #expect(streamed == (try FileEncryptor.encrypt(plaintext, fileKey: key, salt: salt)))
        #expect(pieces == 1 + max(1, (length + Self.batch - 1) / Self.batch), "a header, then one piece per batch")

        var writer = DecryptingWriter(fileKey: key)
        var decrypted: [UInt8] = []
        for start in stride(from: 0, to: streamed.count, by: 10_007) {
            decrypted += try writer.feed(streamed[start..<min(streamed.count, start + 10_007)])
        }
        decrypted += try writer.finish()
        #expect(decrypted == plaintext)
    }
}
