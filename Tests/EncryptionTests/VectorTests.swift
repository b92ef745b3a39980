import CoffreModel
import Crypto
@testable import Encryption
import Foundation
import Testing
import TestSupport

/// The committed test vectors (Tests/EncryptionTests/Vectors) and their independent check.
///
/// Set COFFRE_WRITE_VECTORS=1 to write them anew (only when the format changes on purpose).
struct VectorFile: Codable, Equatable {
    struct Valid: Codable, Equatable {
        var name: String
        var file_key: String
        var salt: String
        var plaintext_length: Int
        var ciphertext_file: String
        var ciphertext_sha256: String
    }

    struct Invalid: Codable, Equatable {
        var name: String
        var file_key: String
        var ciphertext_file: String
    }

    var format = "coffre-v1"
    var plaintext_pattern = "byte i = i mod 251"
    var vectors: [Valid]
    var invalid: [Invalid]
}

let vectorFolder = repositoryRoot + "/Tests/EncryptionTests/Vectors"

/// Builds every vector: its description and its bytes.
func buildVectors() throws -> (VectorFile, [String: [UInt8]]) {
    let cases: [(String, Int)] = [
        ("empty", 0), ("one-byte", 1), ("one-chunk", chunk), ("chunk-plus-one", chunk + 1),
        ("two-chunks", 2 * chunk), ("several-mib", 3 * (1 << 20) + 5),
    ]
    var files: [String: [UInt8]] = [:]
    var valid: [VectorFile.Valid] = []
    var ciphertexts: [String: [UInt8]] = [:]
    var keys: [String: FileKey] = [:]
    for (index, (name, length)) in cases.enumerated() {
        let key = try FileKey(bytes: (0..<32).map { UInt8(($0 * 7 + index * 13) % 256) })
        let salt = (0..<32).map { UInt8(($0 * 11 + index * 5 + 1) % 256) }
        let ciphertext = try FileEncryptor.encrypt(pattern(length), fileKey: key, salt: salt)
        files["\(name).bin"] = ciphertext
        ciphertexts[name] = ciphertext
        keys[name] = key
        valid.append(.init(
            name: name, file_key: Hex.encode(key.bytes), salt: Hex.encode(salt), plaintext_length: length,
            ciphertext_file: "\(name).bin", ciphertext_sha256: Hex.encode(SHA256.hash(data: ciphertext))))
    }
    let base = ciphertexts["chunk-plus-one"]!
    let baseKey = keys["chunk-plus-one"]!
    var versionTwo = Array(base[..<44])
    versionTwo[6] = 2
    versionTwo += hmacSHA256(key: baseKey.derive(salt: [], info: FileFormat.headerInfo), message: versionTwo)
    var flippedTag = base
    flippedTag[base.count - 1] ^= 0x80
    var flippedHeader = base
    flippedHeader[20] ^= 0x01
    let damaged: [(String, [UInt8], FileKey)] = [
        ("truncated-at-chunk-boundary", Array(base.prefix(header + sealedChunk)), baseKey),
        ("truncated-mid-chunk", Array(base.prefix(header + 1000)), baseKey),
        ("chunks-swapped", Array(base[..<header]) + Array(base[(header + sealedChunk)...]) + Array(base[header..<(header + sealedChunk)]), baseKey),
        ("trailing-garbage", base + [0x00], baseKey),
        ("unknown-version", versionTwo + Array(base[header...]), baseKey),
        ("flipped-tag", flippedTag, baseKey),
        ("flipped-salt", flippedHeader, baseKey),
        ("empty-input", [], baseKey),
    ]
    var invalid: [VectorFile.Invalid] = []
    for (name, bytes, key) in damaged {
        files["invalid-\(name).bin"] = bytes
        invalid.append(.init(name: name, file_key: Hex.encode(key.bytes), ciphertext_file: "invalid-\(name).bin"))
    }
    // The right file under the wrong key needs no file of its own.
    files["invalid-wrong-key.bin"] = nil
    invalid.append(.init(name: "wrong-key", file_key: Hex.encode([UInt8](repeating: 0xEE, count: 32)), ciphertext_file: "chunk-plus-one.bin"))
    return (VectorFile(vectors: valid, invalid: invalid), files)
}

@Suite(.serialized) struct VectorTests {
    @Test func committedVectorsMatchTheEncoder() throws {
        let (description, files) = try buildVectors()
        if ProcessInfo.processInfo.environment["COFFRE_WRITE_VECTORS"] == "1" {
            try FileManager.default.createDirectory(atPath: vectorFolder, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(description).write(to: URL(fileURLWithPath: vectorFolder + "/format-v1.json"))
            for (name, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: "\(vectorFolder)/\(name)")) }
        }
        let committed = try JSONDecoder().decode(VectorFile.self, from: Data(contentsOf: URL(fileURLWithPath: vectorFolder + "/format-v1.json")))
        #expect(committed == description)
        for (name, bytes) in files {
            let onDisk = try Data(contentsOf: URL(fileURLWithPath: "\(vectorFolder)/\(name)"))
            #expect(Array(onDisk) == bytes, "\(name) differs from what the encoder produces")
        }
        for vector in committed.invalid {
            let bytes = files[vector.ciphertext_file]!
            #expect(throws: EncryptionError.decryptionFailed, "\(vector.name)") {
                try FileDecryptor.decrypt(bytes, fileKey: FileKey(bytes: Hex.decode(vector.file_key)!))
            }
        }
        for vector in committed.vectors {
            let plaintext = try FileDecryptor.decrypt(files[vector.ciphertext_file]!, fileKey: FileKey(bytes: Hex.decode(vector.file_key)!))
            #expect(plaintext == pattern(vector.plaintext_length))
        }
    }

    /// An independent decoder (Python, `cryptography` package), written from Docs/format.md
    /// alone, must accept every valid vector and refuse every invalid one.
    @Test func independentPythonDecoderAgrees() async throws {
        let script = repositoryRoot + "/Tests/Python/verify_format_vectors.py"
        // In the background: a blocking wait would hold one of the pool's few threads.
        let (status, output) = try await runProcessInBackground("python3", [script, vectorFolder + "/format-v1.json"])
        #expect(status == 0, "\(output)")
        #expect(output.contains(" passed, 0 failed"), "\(output)")
    }
}
