import AESGCM
import CoffreModel
import Crypto
import Foundation
import Testing
import TestSupport

@Suite struct AESGCMTests {
    // McGrew and Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14 (AES-256).
    @Test func knownAnswers() throws {
        let key = try AESGCMKey(key: [UInt8](repeating: 0, count: 32))
        let nonce = [UInt8](repeating: 0, count: 12)
        #expect(Hex.encode(key.seal([], nonce: nonce, authenticating: [])) == "530f8afbc74536b9a963b4f1c4cb738b")
        let sealed = key.seal([UInt8](repeating: 0, count: 16), nonce: nonce, authenticating: [])
        #expect(Hex.encode(sealed) == "cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919")
    }

    @Test(arguments: [0, 1, 15, 16, 17, 4096, 65536, 100_003])
    func agreesWithSwiftCrypto(length: Int) throws {
        var random = SeededGenerator(seed: UInt64(length))
        let keyBytes = random.bytes(32)
        let nonce = random.bytes(12)
        let aad = random.bytes(length % 40)
        let plaintext = random.bytes(length)
        let ours = try AESGCMKey(key: keyBytes).seal(plaintext, nonce: nonce, authenticating: aad)
        let theirs = try AES.GCM.seal(plaintext, using: SymmetricKey(data: keyBytes), nonce: AES.GCM.Nonce(data: nonce), authenticating: aad)
        #expect(ours == Array(theirs.ciphertext) + Array(theirs.tag))
        #expect(try AESGCMKey(key: keyBytes).open(ours, nonce: nonce, authenticating: aad) == plaintext)
    }

    @Test func sealsInPlace() throws {
        let key = try AESGCMKey(key: [UInt8](repeating: 7, count: 32))
        let nonce = [UInt8](repeating: 1, count: 12)
        let plaintext = [UInt8](repeating: 0x42, count: 1000)
        var buffer = plaintext + [UInt8](repeating: 0, count: 16)
        buffer.withUnsafeMutableBytes { b in
            nonce.withUnsafeBytes { n in
                _ = key.seal(UnsafeRawBufferPointer(rebasing: b[..<1000]), nonce: n, into: b)
            }
        }
        #expect(buffer == key.seal(plaintext, nonce: nonce, authenticating: []))
    }

    @Test func tamperingFailsAndReleasesNothing() throws {
        let key = try AESGCMKey(key: [UInt8](repeating: 9, count: 32))
        let nonce = [UInt8](repeating: 2, count: 12)
        var sealed = key.seal([UInt8](repeating: 0x55, count: 64), nonce: nonce, authenticating: [1])
        sealed[10] ^= 1
        var output = [UInt8](repeating: 0xee, count: 64)
        _ = sealed.withUnsafeBytes { s in
            nonce.withUnsafeBytes { n in
                [UInt8(1)].withUnsafeBytes { a in
                    output.withUnsafeMutableBytes { o in
                        #expect(throws: AESGCMError.self) { try key.open(s, nonce: n, authenticating: a, into: o) }
                    }
                }
            }
        }
        #expect(output.allSatisfy { $0 == 0 })
        #expect(throws: AESGCMError.self) { try key.open(Array(sealed.prefix(10)), nonce: nonce, authenticating: [1]) }
    }

    @Test func refusesWrongKeyLength() {
        #expect(throws: AESGCMError.self) { try AESGCMKey(key: [UInt8](repeating: 0, count: 16)) }
    }

    @Test func randomBytesDiffer() {
        #expect(secureRandomBytes(32) != secureRandomBytes(32))
        #expect(secureRandomBytes(0).isEmpty)
    }
}

/// PBKDF2-HMAC-SHA512 against the published answers for "password"/"salt" (the RFC 6070
/// inputs, with SHA-512 as in RFC 7914's companion vectors).
@Suite struct PBKDF2Tests {
    @Test(arguments: [
        (1, "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"),
        (2, "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53cf76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e"),
    ])
    func knownAnswers(iterations: Int, expected: String) {
        let out = PBKDF2.sha512(password: Array("password".utf8), salt: Array("salt".utf8), iterations: iterations, count: 64)
        #expect(out.map { String(format: "%02x", $0) }.joined() == expected)
    }
}
