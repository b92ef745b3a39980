import AESGCM
import CoffreModel
import Crypto
@testable import Encryption
import Foundation
import Testing
import TestSupport

/// Known-answer vectors for every key format a link reader needs (Docs/keys.md), with each
/// intermediate value, in Tests/EncryptionTests/Vectors/keys-v1.json.
///
/// Nonces and random ids are fixed here through the same seams the code draws them from, so
/// the bytes are those the real code produces. Set COFFRE_WRITE_VECTORS=1 to write them anew
/// (only when a format changes on purpose).
struct KeyVectorFile: Codable, Equatable {
    struct Derivation: Codable, Equatable {
        var key: String
        var info: String
        var output: String
    }

    struct Wrap: Codable, Equatable {
        var name: String
        var wrapping_key: String
        var type: String
        var owner: String
        var subject: String
        var aes_key: String
        var associated_data: String
        var nonce: String
        var key: String
        var wrapped: String
    }

    struct Attributes: Codable, Equatable {
        var name: String
        var node_key: String
        var node_id: String
        var aes_key: String
        var associated_data: String
        var nonce: String
        var padded_json: String
        var blob: String
    }

    struct NameTag: Codable, Equatable {
        var folder_key: String
        var name: String
        var hmac_key: String
        var tag: String
    }

    /// A node record as `GET /v1/l/ID` returns it (the fields a reader uses).
    struct Node: Codable, Equatable {
        var id: String
        var parent: String
        var type: String
        var attributes: String
        var wrappedKey: String
        var fileKey: String?
        var length: Int64?
        /// What a reader should find (not part of the record).
        var expect_node_key: String
        var expect_attributes: String
        var expect_file_key: String?
        var ciphertext_file: String?
    }

    struct Link: Codable, Equatable {
        var name: String
        var url: String
        var link_id: String
        var secret: String
        var password: String?
        var password_bytes: String?
        var stretched_password: String?
        var hkdf_input: String
        var link_key: String
        var wrap_aes_key: String
        var associated_data: String
        var record: String
        var node: Node
        /// A folder link's children, each wrapped under the folder's key.
        var children: [Node]
        /// Other spellings of `password` that open the link too (the same text in another
        /// Unicode normalisation form).
        var equivalent_passwords: [String]
    }

    struct BadLink: Codable, Equatable {
        var name: String
        var link_id: String
        var secret: String
        var password: String?
        var record: String
        var node_id: String
        var error: String
    }

    var format = "coffre-keys-v1"
    var derivations: [Derivation]
    var wraps: [Wrap]
    var attributes: [Attributes]
    var name_tags: [NameTag]
    var links: [Link]
    var bad_links: [BadLink]
}

/// Bytes `count` long, `byte` repeated.
private func bytes(_ byte: UInt8, _ count: Int) -> [UInt8] { [UInt8](repeating: byte, count: count) }

/// A "random" source that hands out fixed values in order (for `ShareLink.create`).
private final class FixedRandom: @unchecked Sendable {
    var values: [[UInt8]]
    init(_ values: [[UInt8]]) { self.values = values }
    func next(_ count: Int) -> [UInt8] {
        let value = values.removeFirst()
        precondition(value.count == count, "fixed random value of \(value.count) bytes, wanted \(count)")
        return value
    }
}

private func hex(_ value: [UInt8]) -> String { Hex.encode(value) }

private func recordText(_ record: LinkRecord) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return String(decoding: try encoder.encode(record), as: UTF8.self)
}

private let formatVectors = try! JSONDecoder().decode(
    VectorFile.self, from: Data(contentsOf: URL(fileURLWithPath: vectorFolder + "/format-v1.json")))

/// A file node whose content is a format-v1 vector (so its file key is that vector's).
private func fileNode(
    id: [UInt8], parent: String, parentKey: SecretKey, nodeKey: SecretKey, name: String, vector: String, nonces: UInt8
) throws -> KeyVectorFile.Node {
    let format = formatVectors.vectors.first { $0.name == vector }!
    let nodeId = Base64URL.encode(id)
    let fileKey = try FileKey(bytes: Hex.decode(format.file_key)!)
    let attributes = NodeAttributes(name: name, size: UInt64(format.plaintext_length), modified: 1_790_000_000_000)
    let blob = try AttributeBox.seal(attributes, nodeKey: nodeKey, nodeId: nodeId, nonce: bytes(nonces, 12))
    let wrappedFile = WrappedKey.wrap(try SecretKey(bytes: fileKey.bytes), under: nodeKey, context: NodeKeys.fileKeyContext(nodeId: nodeId), nonce: bytes(nonces + 1, 12))
    let wrappedNode = WrappedKey.wrap(nodeKey, under: parentKey, context: NodeKeys.context(child: nodeId, parent: parent), nonce: bytes(nonces + 2, 12))
    let length = Int64(FileFormat.ciphertextLength(plaintextLength: UInt64(format.plaintext_length)))
    return .init(
        id: nodeId, parent: parent, type: "file", attributes: Base64URL.encode(blob), wrappedKey: Base64URL.encode(wrappedNode.bytes),
        fileKey: Base64URL.encode(wrappedFile.bytes), length: length, expect_node_key: hex(nodeKey.bytes),
        expect_attributes: String(decoding: try sortedJSON(attributes), as: UTF8.self), expect_file_key: format.file_key,
        ciphertext_file: format.ciphertext_file)
}

private func folderNode(id: [UInt8], parent: String, parentKey: SecretKey, nodeKey: SecretKey, name: String, nonces: UInt8) throws -> KeyVectorFile.Node {
    let nodeId = Base64URL.encode(id)
    let attributes = NodeAttributes(name: name, modified: 1_790_000_000_000)
    let blob = try AttributeBox.seal(attributes, nodeKey: nodeKey, nodeId: nodeId, nonce: bytes(nonces, 12))
    let wrappedNode = WrappedKey.wrap(nodeKey, under: parentKey, context: NodeKeys.context(child: nodeId, parent: parent), nonce: bytes(nonces + 2, 12))
    return .init(
        id: nodeId, parent: parent, type: "folder", attributes: Base64URL.encode(blob), wrappedKey: Base64URL.encode(wrappedNode.bytes),
        fileKey: nil, length: nil, expect_node_key: hex(nodeKey.bytes),
        expect_attributes: String(decoding: try sortedJSON(attributes), as: UTF8.self), expect_file_key: nil, ciphertext_file: nil)
}

private func sortedJSON(_ attributes: NodeAttributes) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return try encoder.encode(attributes)
}

/// Builds a link vector with the real `ShareLink.create`, fed fixed randomness.
private func linkVector(
    name: String, idByte: UInt8, password: String?, node: KeyVectorFile.Node, nodeKey: SecretKey, children: [KeyVectorFile.Node] = []
) throws -> KeyVectorFile.Link {
    let linkIdBytes = bytes(idByte, 16)
    let secret = bytes(0x09, 32)
    let salt = bytes(0x07, 16)
    let random = FixedRandom(password == nil ? [linkIdBytes, secret, bytes(0x11, 12)] : [linkIdBytes, secret, salt, bytes(0x11, 12)])
    let iterations = Limits.linkPasswordIterationsMin
    let (record, madeSecret) = try ShareLink.create(nodeKey: nodeKey, nodeId: node.id, password: password, iterations: iterations, random: random.next)
    precondition(madeSecret == secret)
    let linkId = record.linkId
    let stretched = try record.password.map { try $0.stretch(password!) }
    let material = secret + (stretched ?? [])
    let linkKey = try ShareLink.deriveLinkKey(linkId: linkId, secret: secret, password: password.map { ($0, record.password!) })
    let context = ShareLink.context(linkId: linkId, nodeId: node.id)
    return .init(
        name: name, url: ShareLink.url(host: "eu.coffre.example:8443", linkId: linkId, secret: secret), link_id: linkId,
        secret: hex(secret), password: password, password_bytes: password.map { hex(ShareLink.passwordBytes($0)) },
        stretched_password: stretched.map(hex), hkdf_input: hex(material), link_key: hex(linkKey.bytes),
        wrap_aes_key: hex(linkKey.derive(.keyWrapping).bytes), associated_data: hex(context.associatedData),
        record: try recordText(record), node: node, children: children,
        equivalent_passwords: password.map { [$0.decomposedStringWithCanonicalMapping] } ?? [])
}

func buildKeyVectors() throws -> KeyVectorFile {
    let purposes: [KeyPurpose] = [.keyWrapping, .attributes, .nameTags, .treeRoot]
    let derivationKey = try SecretKey(bytes: bytes(0x42, 32))
    let derivations = purposes.map {
        KeyVectorFile.Derivation(key: hex(derivationKey.bytes), info: "coffre/v1/\($0.rawValue)", output: hex(derivationKey.derive($0).bytes))
    }

    let wrapCases: [(String, WrapContext)] = [
        ("link", WrapContext(type: "link", owner: "AwMDAwMDAwMDAwMDAwMDAw", subject: "BQUFBQUFBQUFBQUFBQUFBQ")),
        ("file-key", NodeKeys.fileKeyContext(nodeId: "BQUFBQUFBQUFBQUFBQUFBQ")),
        ("node-key", NodeKeys.context(child: "BgYGBgYGBgYGBgYGBgYGBg", parent: "BQUFBQUFBQUFBQUFBQUFBQ")),
        ("top-level node-key", NodeKeys.context(child: "BQUFBQUFBQUFBQUFBQUFBQ", parent: NodeKeys.rootParentId)),
    ]
    let wrappingKey = try SecretKey(bytes: bytes(0x42, 32))
    let wrapped = try SecretKey(bytes: (0..<32).map { UInt8($0) })
    let wraps = wrapCases.map { name, context in
        let nonce = bytes(0x11, 12)
        return KeyVectorFile.Wrap(
            name: name, wrapping_key: hex(wrappingKey.bytes), type: context.type, owner: context.owner, subject: context.subject,
            aes_key: hex(wrappingKey.derive(.keyWrapping).bytes), associated_data: hex(context.associatedData), nonce: hex(nonce),
            key: hex(wrapped.bytes), wrapped: hex(WrappedKey.wrap(wrapped, under: wrappingKey, context: context, nonce: nonce).bytes))
    }

    let attributeCases: [(String, NodeAttributes)] = [
        ("file", NodeAttributes(name: "one-byte.bin", size: 1, modified: 1_790_000_000_000)),
        ("folder, non-ASCII", NodeAttributes(name: "Rapport annuel — 2026", modified: 1_790_000_000_000)),
        ("long name", NodeAttributes(name: String(repeating: "n", count: 100), size: 123_456)),
    ]
    let attributeKey = try SecretKey(bytes: bytes(0x42, 32))
    let attributes = try attributeCases.map { name, value in
        let nonce = bytes(0x33, 12)
        let blob = try AttributeBox.seal(value, nodeKey: attributeKey, nodeId: "BQUFBQUFBQUFBQUFBQUFBQ", nonce: nonce)
        let cipher = try AESGCMKey(key: attributeKey.derive(.attributes).bytes)
        let padded = try cipher.open(Array(blob[13...]), nonce: nonce, authenticating: encodeFields("coffre/v1/attributes", "BQUFBQUFBQUFBQUFBQUFBQ"))
        return KeyVectorFile.Attributes(
            name: name, node_key: hex(attributeKey.bytes), node_id: "BQUFBQUFBQUFBQUFBQUFBQ", aes_key: hex(attributeKey.derive(.attributes).bytes),
            associated_data: hex(encodeFields("coffre/v1/attributes", "BQUFBQUFBQUFBQUFBQUFBQ")), nonce: hex(nonce),
            padded_json: String(decoding: padded, as: UTF8.self), blob: Base64URL.encode(blob))
    }

    let folderKey = try SecretKey(bytes: bytes(0x01, 32))
    let nameTags = ["a", "caf\u{E9}", "cafe\u{301}", "Quarterly Ledger 2026.bin"].map {
        KeyVectorFile.NameTag(folder_key: hex(folderKey.bytes), name: $0, hmac_key: hex(folderKey.derive(.nameTags).bytes), tag: NodeKeys.nameTag($0, folderKey: folderKey))
    }

    // A file at the top of an account, linked twice; a folder with a file and a sub-folder.
    let rootKey = try SecretKey(bytes: bytes(0xA1, 32))
    let fileKeyOfNode = try SecretKey(bytes: bytes(0x42, 32))
    let file = try fileNode(id: bytes(5, 16), parent: NodeKeys.rootParentId, parentKey: rootKey, nodeKey: fileKeyOfNode, name: "one-byte.bin", vector: "one-byte", nonces: 0x20)
    let bigKey = try SecretKey(bytes: bytes(0x43, 32))
    let big = try fileNode(id: bytes(6, 16), parent: NodeKeys.rootParentId, parentKey: rootKey, nodeKey: bigKey, name: "two chunks.bin", vector: "chunk-plus-one", nonces: 0x30)
    let folderNodeKey = try SecretKey(bytes: bytes(0x44, 32))
    let folder = try folderNode(id: bytes(7, 16), parent: NodeKeys.rootParentId, parentKey: rootKey, nodeKey: folderNodeKey, name: "Photos — été", nonces: 0x40)
    let inFolder = try fileNode(id: bytes(8, 16), parent: folder.id, parentKey: folderNodeKey, nodeKey: try SecretKey(bytes: bytes(0x45, 32)), name: "plage.jpg", vector: "two-chunks", nonces: 0x50)
    let subfolder = try folderNode(id: bytes(9, 16), parent: folder.id, parentKey: folderNodeKey, nodeKey: try SecretKey(bytes: bytes(0x46, 32)), name: "2026", nonces: 0x60)

    let links = [
        try linkVector(name: "file, no password", idByte: 3, password: nil, node: file, nodeKey: fileKeyOfNode),
        try linkVector(name: "file, password", idByte: 4, password: "sésame, ouvre-toi", node: big, nodeKey: bigKey),
        try linkVector(name: "folder", idByte: 10, password: nil, node: folder, nodeKey: folderNodeKey, children: [inFolder, subfolder]),
    ]

    let plain = links[0]
    let protected = links[1]
    var otherNode = try JSONSerialization.jsonObject(with: Data(plain.record.utf8)) as! [String: Any]
    otherNode["nodeId"] = big.id
    var newer = try JSONSerialization.jsonObject(with: Data(plain.record.utf8)) as! [String: Any]
    newer["version"] = 2
    func text(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
    func editedPassword(_ key: String, _ value: Any) throws -> String {
        var object = try JSONSerialization.jsonObject(with: Data(protected.record.utf8)) as! [String: Any]
        var password = object["password"] as! [String: Any]
        password[key] = value
        object["password"] = password
        return try text(object)
    }
    var wrongSecret = Hex.decode(plain.secret)!
    wrongSecret[31] ^= 1
    let badLinks: [KeyVectorFile.BadLink] = [
        .init(name: "wrong secret", link_id: plain.link_id, secret: hex(wrongSecret), record: plain.record, node_id: file.id, error: "decryption_failed"),
        .init(name: "wrong password", link_id: protected.link_id, secret: protected.secret, password: "open sesame", record: protected.record, node_id: big.id, error: "decryption_failed"),
        .init(name: "no password", link_id: protected.link_id, secret: protected.secret, record: protected.record, node_id: big.id, error: "password_required"),
        .init(name: "record moved to another node", link_id: plain.link_id, secret: plain.secret, record: try text(otherNode), node_id: big.id, error: "decryption_failed"),
        .init(name: "unknown version", link_id: plain.link_id, secret: plain.secret, record: try text(newer), node_id: file.id, error: "unsupported_version"),
        .init(name: "rounds under the floor", link_id: protected.link_id, secret: protected.secret, password: protected.password,
              record: try editedPassword("iterations", Limits.linkPasswordIterationsMin - 1), node_id: big.id, error: "weak_parameters"),
        .init(name: "rounds over the ceiling", link_id: protected.link_id, secret: protected.secret, password: protected.password,
              record: try editedPassword("iterations", Limits.linkPasswordIterationsMax + 1), node_id: big.id, error: "limit_exceeded"),
        .init(name: "unknown password algorithm", link_id: protected.link_id, secret: protected.secret, password: protected.password,
              record: try editedPassword("kdf", "argon2id"), node_id: big.id, error: "unsupported_version"),
        .init(name: "salt of 15 bytes", link_id: protected.link_id, secret: protected.secret, password: protected.password,
              record: try editedPassword("salt", Base64URL.encode(bytes(7, 15))), node_id: big.id, error: "invalid_argument"),
        .init(name: "other rounds than the link was made with", link_id: protected.link_id, secret: protected.secret, password: protected.password,
              record: try editedPassword("iterations", Limits.linkPasswordIterationsMin + 1), node_id: big.id, error: "decryption_failed"),
        .init(name: "password in a record without one", link_id: plain.link_id, secret: plain.secret, password: "anything",
              record: plain.record, node_id: file.id, error: ""),
    ]
    return KeyVectorFile(derivations: derivations, wraps: wraps, attributes: attributes, name_tags: nameTags, links: links, bad_links: badLinks)
}

@Suite(.serialized) struct KeyVectorTests {
    static let path = vectorFolder + "/keys-v1.json"

    @Test func committedVectorsMatchTheCode() throws {
        let built = try buildKeyVectors()
        if ProcessInfo.processInfo.environment["COFFRE_WRITE_VECTORS"] == "1" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try encoder.encode(built).write(to: URL(fileURLWithPath: Self.path))
        }
        let committed = try JSONDecoder().decode(KeyVectorFile.self, from: Data(contentsOf: URL(fileURLWithPath: Self.path)))
        #expect(committed == built)
    }

    /// The reader's side, through the public API: every link opens to its node key, its
    /// attributes and file key, and every bad link fails with its code.
    @Test func linksOpenThroughThePublicAPI() throws {
        let vectors = try JSONDecoder().decode(KeyVectorFile.self, from: Data(contentsOf: URL(fileURLWithPath: Self.path)))
        for link in vectors.links {
            let parsed = try ShareLink.parse(link.url)
            let record = try ShareLink.decodeRecord(link.record)
            let nodeKey = try ShareLink.open(record, secret: parsed.secret, password: link.password)
            #expect(Hex.encode(nodeKey.bytes) == link.node.expect_node_key, "\(link.name)")
            for node in [link.node] + link.children {
                let key = node.id == link.node.id
                    ? nodeKey : try NodeKeys.unwrap(WrappedKey(bytes: Base64URL.decode(node.wrappedKey)!), childId: node.id, parentId: node.parent, under: nodeKey)
                #expect(Hex.encode(key.bytes) == node.expect_node_key, "\(link.name) \(node.id)")
                let attributes = try AttributeBox.open(Base64URL.decode(node.attributes)!, nodeKey: key, nodeId: node.id)
                #expect(String(decoding: try sortedJSON(attributes), as: UTF8.self) == node.expect_attributes)
                if let fileKey = node.fileKey {
                    let opened = try NodeKeys.unwrapFileKey(WrappedKey(bytes: Base64URL.decode(fileKey)!), nodeId: node.id, under: key)
                    #expect(Hex.encode(opened.bytes) == node.expect_file_key)
                }
            }
        }
        for bad in vectors.bad_links where bad.error.isEmpty {
            _ = try ShareLink.open(ShareLink.decodeRecord(bad.record), secret: Hex.decode(bad.secret)!, password: bad.password)
        }
        for link in vectors.links {
            for other in link.equivalent_passwords {
                let key = try ShareLink.open(ShareLink.decodeRecord(link.record), secret: Hex.decode(link.secret)!, password: other)
                #expect(Hex.encode(key.bytes) == link.node.expect_node_key, "\(link.name): \(other)")
            }
        }
        for bad in vectors.bad_links where !bad.error.isEmpty {
            #expect(throws: EncryptionError.self, "\(bad.name)") {
                do {
                    let record = try ShareLink.decodeRecord(bad.record)
                    _ = try ShareLink.open(record, secret: Hex.decode(bad.secret)!, password: bad.password)
                } catch let error as EncryptionError {
                    #expect(error.code.rawValue == bad.error, "\(bad.name)")
                    throw error
                }
            }
        }
    }

    /// An independent reader (Python, `cryptography` and hashlib), written from Docs/keys.md
    /// alone, reaches the same values and refuses the bad links with the same codes.
    @Test func independentPythonReaderAgrees() async throws {
        let script = repositoryRoot + "/Tests/Python/verify_key_vectors.py"
        // In the background: a blocking wait would hold one of the pool's few threads.
        let (status, output) = try await runProcessInBackground("python3", [script, Self.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains(" passed, 0 failed"), "\(output)")
    }
}
