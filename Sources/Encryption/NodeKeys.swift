import AESGCM
import CoffreModel
import Foundation

/// Node keys: every file and folder has a random key, wrapped under its parent's key.
///
/// A wrap is bound to the parent and child ids, so the server cannot move a wrapped key to
/// another place in the tree. Top-level nodes are wrapped under the master key's `treeRoot`
/// subkey with the parent id "root".
public enum NodeKeys {
    public static let rootParentId = "root"

    static func context(child: String, parent: String) -> WrapContext {
        WrapContext(type: "node-key", owner: parent, subject: child)
    }

    /// The key that wraps top-level node keys.
    public static func rootKey(masterKey: SecretKey) -> SecretKey { masterKey.derive(.treeRoot) }

    public static func wrap(_ childKey: SecretKey, childId: String, parentId: String, under parentKey: SecretKey) -> WrappedKey {
        .wrap(childKey, under: parentKey, context: context(child: childId, parent: parentId))
    }

    public static func unwrap(_ wrapped: WrappedKey, childId: String, parentId: String, under parentKey: SecretKey) throws(EncryptionError) -> SecretKey {
        try wrapped.unwrap(under: parentKey, context: context(child: childId, parent: parentId))
    }

    /// A folder's previous key while it takes a new one, wrapped under the new key: type
    /// "previous-key", owner and subject the folder's id (Docs/keys.md, "Key rotation").
    static func previousKeyContext(nodeId: String) -> WrapContext {
        WrapContext(type: "previous-key", owner: nodeId, subject: nodeId)
    }

    public static func wrapPreviousKey(_ previous: SecretKey, nodeId: String, under current: SecretKey) -> WrappedKey {
        .wrap(previous, under: current, context: previousKeyContext(nodeId: nodeId))
    }

    public static func unwrapPreviousKey(_ wrapped: WrappedKey, nodeId: String, under current: SecretKey) throws(EncryptionError) -> SecretKey {
        try wrapped.unwrap(under: current, context: previousKeyContext(nodeId: nodeId))
    }

    /// What binds a file key to its file: wrapped under the file's own node key, type
    /// "file-key", owner and subject both the node id (Docs/keys.md, "Wrapped keys").
    static func fileKeyContext(nodeId: String) -> WrapContext {
        WrapContext(type: "file-key", owner: nodeId, subject: nodeId)
    }

    public static func wrapFileKey(_ fileKey: FileKey, nodeId: String, under nodeKey: SecretKey) -> WrappedKey {
        .wrap(try! SecretKey(bytes: fileKey.bytes), under: nodeKey, context: fileKeyContext(nodeId: nodeId))
    }

    public static func unwrapFileKey(_ wrapped: WrappedKey, nodeId: String, under nodeKey: SecretKey) throws(EncryptionError) -> FileKey {
        let key = try wrapped.unwrap(under: nodeKey, context: fileKeyContext(nodeId: nodeId))
        return try! FileKey(bytes: key.bytes)
    }

    /// The tag by which the server knows a child's name without seeing it:
    /// HMAC-SHA256(HKDF(folder key, "coffre/v1/name-tags"), NFC(name)), first 16 bytes,
    /// base64url.
    ///
    /// Why: names must be unique per folder and found without listing the folder, and only
    /// the server can enforce the first against racing clients. What it reveals: whether two
    /// children of one folder, at any two times, had the same name — nothing across folders
    /// (each folder has its own key), nothing about the name itself without the folder key.
    /// Names are compared after Unicode normalisation (NFC), as Swift compares strings.
    public static func nameTag(_ name: String, folderKey: SecretKey) -> String {
        let key = folderKey.derive(.nameTags)
        let tag = hmacSHA256(key: key.bytes, message: Array(name.precomposedStringWithCanonicalMapping.utf8))
        return Base64URL.encode(Array(tag.prefix(16)))
    }
}

/// A node's attributes, which only the client sees: name, size, modification time.
public struct NodeAttributes: Codable, Hashable, Sendable {
    public var name: String
    public var size: UInt64?
    /// Milliseconds since 1970-01-01 UTC.
    public var modified: Int64?

    public init(name: String, size: UInt64? = nil, modified: Int64? = nil) {
        self.name = name
        self.size = size
        self.modified = modified
    }

    /// Checks the name as a file system would: 1 to 255 bytes of UTF-8, no "/" or NUL,
    /// not "." or "..".
    public func validate() throws(EncryptionError) {
        let length = name.utf8.count
        guard length >= 1, length <= Limits.fileNameSizeMax else {
            throw EncryptionError(.invalidArgument, "a name is 1...\(Limits.fileNameSizeMax) bytes of UTF-8, got \(length)")
        }
        guard !name.contains("/"), !name.utf8.contains(0), name != ".", name != ".." else {
            throw EncryptionError(.invalidArgument, "a name cannot be \".\", \"..\" or contain \"/\" or NUL")
        }
    }
}

/// Attribute blobs: JSON, padded to a multiple of 64 bytes (so the length of a name leaks
/// only coarsely), AES-256-GCM under the node key's `attributes` subkey, bound to the node id.
/// Encoding: version 0x01, 12-byte random nonce, ciphertext and tag.
public enum AttributeBox {
    static let padding = 64

    public static func seal(_ attributes: NodeAttributes, nodeKey: SecretKey, nodeId: String) throws(EncryptionError) -> [UInt8] {
        try seal(attributes, nodeKey: nodeKey, nodeId: nodeId, nonce: secureRandomBytes(AESGCMKey.nonceSize))
    }

    /// Seals with a given nonce (vectors); a nonce must never repeat under one node key.
    static func seal(_ attributes: NodeAttributes, nodeKey: SecretKey, nodeId: String, nonce: [UInt8]) throws(EncryptionError) -> [UInt8] {
        precondition(nonce.count == AESGCMKey.nonceSize, "an attributes nonce is 12 bytes")
        try attributes.validate()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var json = Array(try! encoder.encode(attributes))
        // JSON allows trailing whitespace, so spaces pad without a length field.
        json += [UInt8](repeating: 0x20, count: (padding - json.count % padding) % padding)
        guard json.count <= Limits.attributesSizeMax else {
            throw EncryptionError(.limitExceeded, "attributes of \(json.count) B exceed \(Limits.attributesSizeMax) B")
        }
        let cipher = try! AESGCMKey(key: nodeKey.derive(.attributes).bytes)
        return [1] + nonce + cipher.seal(json, nonce: nonce, authenticating: encodeFields("coffre/v1/attributes", nodeId))
    }

    public static func open(_ blob: [UInt8], nodeKey: SecretKey, nodeId: String) throws(EncryptionError) -> NodeAttributes {
        guard blob.count >= 1 + AESGCMKey.nonceSize + AESGCMKey.tagSize, blob.count <= Limits.attributesSizeMax + 29, blob[0] == 1 else {
            throw .decryptionFailed
        }
        let cipher = try! AESGCMKey(key: nodeKey.derive(.attributes).bytes)
        guard
            let json = try? cipher.open(Array(blob[13...]), nonce: Array(blob[1..<13]), authenticating: encodeFields("coffre/v1/attributes", nodeId)),
            let attributes = try? JSONDecoder().decode(NodeAttributes.self, from: Data(json))
        else { throw .decryptionFailed }
        return attributes
    }
}
