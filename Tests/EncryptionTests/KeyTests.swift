import Foundation
import CoffreModel
import Crypto
@testable import Encryption
import Sodium
import Testing

@Suite struct AccountKeyTests {
    @Test func passwordAndRecoveryKeyBothUnlockTheMasterKey() throws {
        let created = try AccountKeys.create(accountId: "acct-1", password: "hunter2 but longer", parameters: .minimum)
        #expect(try AccountKeys.unlock(created.record, password: "hunter2 but longer") == created.masterKey)
        #expect(try AccountKeys.recover(created.record, recoveryKey: created.recoveryKey) == created.masterKey)
        let reparsed = try RecoveryKey(printable: created.recoveryKey.printable.lowercased())
        #expect(reparsed == created.recoveryKey)
        #expect(throws: EncryptionError.decryptionFailed) { try AccountKeys.unlock(created.record, password: "wrong") }
        // The authentication key is neither the wrapping key nor anything derived from the master key.
        let keys = try PasswordKeys.derive(password: "hunter2 but longer", salt: created.record.passwordSalt, parameters: .minimum)
        #expect(keys.authenticationKey == created.authenticationKey)
        #expect(keys.authenticationKey != keys.wrappingKey)
    }

    @Test func aRecordMovedToAnotherAccountDoesNotOpen() throws {
        let created = try AccountKeys.create(accountId: "alice", password: "pw-alice", parameters: .minimum)
        let moved = AccountKeyRecord(
            accountId: "mallory", passwordSalt: created.record.passwordSalt,
            passwordParameters: created.record.passwordParameters,
            masterKeyByPassword: created.record.masterKeyByPassword,
            masterKeyByRecoveryKey: created.record.masterKeyByRecoveryKey,
            publicIdentity: created.record.publicIdentity)
        #expect(throws: EncryptionError.decryptionFailed) { try AccountKeys.unlock(moved, password: "pw-alice") }
    }

    @Test func weakParametersFromAServerAreRefused() throws {
        let created = try AccountKeys.create(accountId: "a", password: "p", parameters: .minimum)
        let weak = AccountKeyRecord(
            accountId: "a", passwordSalt: created.record.passwordSalt,
            passwordParameters: Argon2id.Parameters(operations: 1, memoryBytes: 8 << 20),
            masterKeyByPassword: created.record.masterKeyByPassword,
            masterKeyByRecoveryKey: created.record.masterKeyByRecoveryKey,
            publicIdentity: created.record.publicIdentity)
        #expect { try AccountKeys.unlock(weak, password: "p") } throws: { ($0 as? EncryptionError)?.code == .weakParameters }
    }

    @Test func recoveryKeyTyposAreCaught() throws {
        let key = RecoveryKey.random()
        var text = Array(key.printable)
        #expect(text.count == 55 + 10)
        let position = text.firstIndex { $0 != "-" }!
        text[position] = text[position] == "A" ? "B" : "A"
        #expect { try RecoveryKey(printable: String(text)) } throws: { ($0 as? EncryptionError)?.code == .invalidArgument }
        #expect(throws: EncryptionError.self) { try RecoveryKey(printable: "not a key") }
    }
}

@Suite struct NodeKeyTests {
    @Test func nameTagsAreKeyedPerFolderAndCompareNamesAfterNormalisation() throws {
        let folder = SecretKey.random()
        let tag = NodeKeys.nameTag("Quarterly Ledger.bin", folderKey: folder)
        #expect(Base64URL.decode(tag)?.count == 16)
        #expect(NodeKeys.nameTag("Quarterly Ledger.bin", folderKey: folder) == tag, "deterministic")
        #expect(NodeKeys.nameTag("Quarterly Ledger.bin", folderKey: SecretKey.random()) != tag, "another folder, another tag")
        #expect(NodeKeys.nameTag("quarterly Ledger.bin", folderKey: folder) != tag)
        #expect(NodeKeys.nameTag("caf\u{E9}", folderKey: folder) == NodeKeys.nameTag("cafe\u{301}", folderKey: folder), "NFC")
        // Pinned: HMAC-SHA256(HKDF-SHA256(key, info "coffre/v1/name-tags"), "a")[0..<16].
        let fixed = try SecretKey(bytes: [UInt8](repeating: 1, count: 32))
        let expected = Base64URL.encode(Array(HMAC<SHA256>.authenticationCode(
            for: Array("a".utf8), using: SymmetricKey(data: HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: fixed.bytes), salt: [UInt8](), info: Array("coffre/v1/name-tags".utf8), outputByteCount: 32)
            )).prefix(16)))
        #expect(NodeKeys.nameTag("a", folderKey: fixed) == expected)
    }

    @Test func wrapsAreBoundToTheirPlaceInTheTree() throws {
        let parent = SecretKey.random()
        let child = SecretKey.random()
        let wrapped = NodeKeys.wrap(child, childId: "n2", parentId: "n1", under: parent)
        #expect(try NodeKeys.unwrap(wrapped, childId: "n2", parentId: "n1", under: parent) == child)
        #expect(throws: EncryptionError.decryptionFailed) { try NodeKeys.unwrap(wrapped, childId: "n3", parentId: "n1", under: parent) }
        #expect(throws: EncryptionError.decryptionFailed) { try NodeKeys.unwrap(wrapped, childId: "n2", parentId: "n9", under: parent) }
        #expect(throws: EncryptionError.decryptionFailed) { try NodeKeys.unwrap(wrapped, childId: "n2", parentId: "n1", under: .random()) }
        var tampered = wrapped.bytes
        tampered[20] ^= 1
        #expect(throws: EncryptionError.decryptionFailed) {
            try NodeKeys.unwrap(WrappedKey(bytes: tampered), childId: "n2", parentId: "n1", under: parent)
        }
    }

    @Test func attributesRoundTripAndHideTheNameLength() throws {
        let key = SecretKey.random()
        let attributes = NodeAttributes(name: "Tax 26.pdf", size: 123_456, modified: 1_790_000_000_000)
        let blob = try AttributeBox.seal(attributes, nodeKey: key, nodeId: "n1")
        #expect(try AttributeBox.open(blob, nodeKey: key, nodeId: "n1") == attributes)
        #expect(!String(decoding: blob, as: UTF8.self).contains("Tax"))
        let short = try AttributeBox.seal(NodeAttributes(name: "a", size: 123_456, modified: 1_790_000_000_000), nodeKey: key, nodeId: "n1")
        #expect(short.count == blob.count, "padding to 64 bytes hides small differences in name length")
        #expect(throws: EncryptionError.decryptionFailed) { try AttributeBox.open(blob, nodeKey: key, nodeId: "n2") }
        var tampered = blob
        tampered[tampered.count - 1] ^= 1
        #expect(throws: EncryptionError.decryptionFailed) { try AttributeBox.open(tampered, nodeKey: key, nodeId: "n1") }
    }

    @Test(arguments: ["", ".", "..", "a/b", "nul\u{0}", String(repeating: "x", count: 256)])
    func refusesBadNames(name: String) {
        #expect(throws: EncryptionError.self) { try AttributeBox.seal(NodeAttributes(name: name), nodeKey: .random(), nodeId: "n") }
    }

    @Test func subkeysDifferByPurpose() {
        let key = SecretKey.random()
        let purposes: [KeyPurpose] = [.authentication, .passwordWrapping, .keyWrapping, .attributes, .nameTags, .treeRoot, .signing, .sharing, .link]
        #expect(Set(purposes.map { key.derive($0) }).count == purposes.count)
    }
}

@Suite struct ShareLinkTests {
    @Test func linkRoundTripsWithoutPassword() throws {
        let nodeKey = SecretKey.random()
        let (record, secret) = try ShareLink.create(nodeKey: nodeKey, nodeId: "file-1")
        let url = ShareLink.url(host: "fr.coffre.test:8443", linkId: record.linkId, secret: secret)
        let parsed = try ShareLink.parse(url)
        #expect(parsed.host == "fr.coffre.test:8443")
        #expect(parsed.linkId == record.linkId)
        #expect(try ShareLink.open(record, secret: parsed.secret) == nodeKey)
        var wrong = parsed.secret
        wrong[0] ^= 1
        #expect(throws: EncryptionError.decryptionFailed) { try ShareLink.open(record, secret: wrong) }
        // The part before '#' (what a server sees) holds nothing of the secret.
        #expect(!url.split(separator: "#")[0].contains(Base64URL.encode(secret)))
    }

    @Test func passwordProtectedLink() throws {
        let nodeKey = SecretKey.random()
        let (record, secret) = try ShareLink.create(nodeKey: nodeKey, nodeId: "file-2", password: "open sesame", iterations: Limits.linkPasswordIterationsMin)
        #expect(record.hasPassword)
        #expect(try ShareLink.open(record, secret: secret, password: "open sesame") == nodeKey)
        #expect(throws: EncryptionError.decryptionFailed) { try ShareLink.open(record, secret: secret, password: "open sesamE") }
        #expect { try ShareLink.open(record, secret: secret) } throws: { ($0 as? EncryptionError)?.code == .passwordRequired }
    }

    /// A password typed composed on one system and decomposed on another opens the same link.
    @Test func passwordsAreComparedAfterNormalisation() throws {
        let nodeKey = SecretKey.random()
        let (record, secret) = try ShareLink.create(nodeKey: nodeKey, nodeId: "f", password: "caf\u{E9}", iterations: Limits.linkPasswordIterationsMin)
        #expect(try ShareLink.open(record, secret: secret, password: "cafe\u{301}") == nodeKey)
    }

    /// What a server could change in a record, and what the reader says.
    @Test func recordsAreCheckedBeforeAnyWork() throws {
        let (record, _) = try ShareLink.create(nodeKey: .random(), nodeId: "f", password: "p", iterations: Limits.linkPasswordIterationsMin)
        let text = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        func code(_ edit: (inout [String: Any]) -> Void) -> ErrorCode? {
            var object = try! JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            edit(&object)
            let edited = String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            do throws(EncryptionError) {
                let decoded = try ShareLink.decodeRecord(edited)
                _ = try ShareLink.open(decoded, secret: [UInt8](repeating: 0, count: 32), password: "p")
                return nil
            } catch { return error.code }
        }
        func password(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { object in
                var password = object["password"] as! [String: Any]
                password[key] = value
                object["password"] = password
            }
        }
        #expect(code { $0["version"] = 2 } == .unsupportedVersion)
        #expect(code { $0["wrappedNodeKey"] = "AQ" } == .invalidArgument)
        #expect(code(password("kdf", "argon2id")) == .unsupportedVersion)
        #expect(code(password("iterations", Limits.linkPasswordIterationsMin - 1)) == .weakParameters)
        #expect(code(password("iterations", Limits.linkPasswordIterationsMax + 1)) == .limitExceeded)
        #expect(code(password("salt", "AAAA")) == .invalidArgument)
        #expect(code { _ in } == .decryptionFailed)
    }

    @Test(arguments: [
        "http://h/l/AAAAAAAAAAAAAAAAAAAAAA#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "https://h/l/AAAAAAAAAAAAAAAAAAAAAA",
        "https://h/x/AAAAAAAAAAAAAAAAAAAAAA#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "https://h/l/short#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "https://h/l/AAAAAAAAAAAAAAAAAAAAAA#short",
        "https:///l/AAAAAAAAAAAAAAAAAAAAAA#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ])
    func refusesMalformedURLs(url: String) {
        #expect(throws: EncryptionError.self) { try ShareLink.parse(url) }
    }

    @Test func aRecordForAnotherNodeDoesNotOpen() throws {
        let (record, secret) = try ShareLink.create(nodeKey: .random(), nodeId: "file-1")
        let moved = LinkRecord(linkId: record.linkId, nodeId: "file-9", wrappedNodeKey: record.wrappedNodeKey, password: nil)
        #expect(throws: EncryptionError.decryptionFailed) { try ShareLink.open(moved, secret: secret) }
    }
}

@Suite struct UserShareTests {
    @Test func sealedShareOpensOnlyForTheRecipientAndChecksTheSender() throws {
        let alice = Identity(masterKey: .random())
        let bob = Identity(masterKey: .random())
        let eve = Identity(masterKey: .random())
        let nodeKey = SecretKey.random()
        let share = try UserShare.seal(nodeKey: nodeKey, nodeId: "folder-1", from: alice, senderId: "alice", to: bob.publicIdentity, recipientId: "bob")
        #expect(try UserShare.open(share, nodeId: "folder-1", senderId: "alice", sender: alice.publicIdentity, as: bob, recipientId: "bob") == nodeKey)
        #expect(throws: EncryptionError.decryptionFailed) {
            try UserShare.open(share, nodeId: "folder-1", senderId: "alice", sender: alice.publicIdentity, as: eve, recipientId: "bob")
        }
        #expect { try UserShare.open(share, nodeId: "folder-1", senderId: "alice", sender: eve.publicIdentity, as: bob, recipientId: "bob") } throws: {
            ($0 as? EncryptionError)?.code == .signatureInvalid
        }
        #expect { try UserShare.open(share, nodeId: "folder-2", senderId: "alice", sender: alice.publicIdentity, as: bob, recipientId: "bob") } throws: {
            ($0 as? EncryptionError)?.code == .signatureInvalid
        }
    }

    @Test func signaturesAreBoundToTheirContext() throws {
        let alice = Identity(masterKey: .random())
        let record = Array("node record bytes".utf8)
        let signature = alice.sign(record, context: "node-record")
        try alice.publicIdentity.verify(signature, of: record, context: "node-record")
        #expect(throws: EncryptionError.self) { try alice.publicIdentity.verify(signature, of: record, context: "share") }
        #expect(throws: EncryptionError.self) { try alice.publicIdentity.verify(signature, of: record + [0], context: "node-record") }
    }

    @Test func identityIsDerivedFromTheMasterKey() {
        let master = SecretKey.random()
        #expect(Identity(masterKey: master).publicIdentity == Identity(masterKey: master).publicIdentity)
        #expect(Identity(masterKey: master).publicIdentity != Identity(masterKey: .random()).publicIdentity)
    }
}

/// Found by the key-record fuzzer: a key record (or link record) from a server could carry a
/// wrapped key of 4 bytes, which decoding accepted and `unwrap` then read past (a trap in
/// the client). Decoding now checks sizes as the initialisers do.
@Suite struct RecordDecodingTests {
    @Test func aWrappedKeyOfTheWrongSizeDoesNotDecode() throws {
        let key = WrappedKey.wrap(.random(), under: .random(), context: WrapContext(type: "t", owner: "o", subject: "s"))
        let good = try JSONEncoder().encode(key)
        #expect(try JSONDecoder().decode(WrappedKey.self, from: good) == key)
        for bytes in [[1, 85, 83, 65], [UInt8](repeating: 1, count: 62), [2] + [UInt8](repeating: 0, count: 60)] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(WrappedKey.self, from: JSONEncoder().encode(["bytes": bytes])) }
        }
    }

    @Test func aPublicIdentityWithShortKeysDoesNotDecode() throws {
        let json = #"{"signingKey":[2,147],"agreementKey":[1,2,3]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(PublicIdentity.self, from: Data(json.utf8)) }
    }
}

