import CoffreAPI
public import CoffreModel
import Encryption
import Foundation

/// A link as its owner sees it.
public struct LinkEntry: Codable, Sendable, Hashable {
    public let linkId: String
    public let nodeId: String
    public let expiresAt: Int64?
    public let createdAt: Int64
}

extension CoffreClient {
    /// Records are written with sorted keys, so the same record is the same bytes.
    static var recordEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }

    /// Creates a share link to a file; the secret goes only into the returned URL's fragment.
    ///
    /// - Parameter publicHost: host[:port] for the URL (default: the first coordinator's).
    public func createLink(
        _ path: String, _ session: Session, expiresIn seconds: Int64? = nil, password: String? = nil,
        iterations: Int = Limits.linkPasswordIterationsDefault, publicHost: String? = nil
    ) async throws -> (url: String, linkId: String) {
        let node = try await locate(path, session)
        guard let info = node.info else { throw ClientError(.invalidArgument, "a link is to a file or a folder, not to the root") }
        let expiresAt = seconds.map { Int64(Date().timeIntervalSince1970 * 1000) + $0 * 1000 }
        let (record, secret) = try ShareLink.create(nodeKey: node.key, nodeId: info.id, password: password, iterations: iterations)
        let request = CreateLinkRequest(
            linkId: record.linkId, nodeId: info.id, record: String(decoding: try Self.recordEncoder.encode(record), as: UTF8.self), expiresAt: expiresAt)
        _ = try await send(.POST, "/v1/links", token: session.token, json: request)
        let host = publicHost ?? URL(string: endpoints[0]).map { url in url.host.map { $0 + (url.port.map { ":\($0)" } ?? "") } ?? "" } ?? ""
        return (ShareLink.url(host: host, linkId: record.linkId, secret: secret), record.linkId)
    }

    public func revokeLink(_ linkId: String, _ session: Session) async throws {
        _ = try await send(.DELETE, "/v1/links/" + linkId, token: session.token)
    }

    public func links(_ session: Session) async throws -> [LinkEntry] {
        try decode(LinkList.self, try await send(.GET, "/v1/links", token: session.token)).links.map {
            LinkEntry(linkId: $0.linkId, nodeId: $0.nodeId, expiresAt: $0.expiresAt, createdAt: $0.createdAt)
        }
    }

    /// A client for a share link: the link's own host first, then the profile's coordinators
    /// (`--via` and `--coordinator` still choose). With no profile, only the link's host,
    /// trusted through the system's certificate authorities: a link needs no account.
    public static func forLink(_ url: String, profile: Profile?, via: String? = nil, coordinator: String? = nil) throws -> CoffreClient {
        let host = "https://" + (try ShareLink.parse(url)).host
        guard let profile else {
            return try CoffreClient(profile: Profile(name: "link", coordinators: [.init(country: "", url: host)], ca: ""), coordinator: coordinator)
        }
        return try CoffreClient(profile: profile, via: via, coordinator: coordinator, first: via == nil ? host : nil)
    }

    /// Opens a share link: its node record and node key, from the link id and the secret in
    /// the URL's fragment (which stays in this process).
    func openLink(_ url: String, password: String?) async throws -> (linkId: String, node: TreeNodeInfo, nodeKey: SecretKey) {
        let parsed = try ShareLink.parse(url)
        let link = try decode(PublicLink.self, try await send(.GET, "/v1/l/" + parsed.linkId))
        let record = try ShareLink.decodeRecord(link.link.record)
        guard record.linkId == parsed.linkId, record.nodeId == link.node.id else { throw ClientError(.decryptionFailed, "the link record does not match the link") }
        return (parsed.linkId, link.node, try ShareLink.open(record, secret: parsed.secret, password: password))
    }

    /// Downloads and decrypts what a share link names, with no account: a file, or a folder
    /// with everything below it. The URL's fragment (the secret) stays in this process: only
    /// the link id is sent.
    /// - Parameter fileProgress: called before each file of a folder (its path and size).
    /// - Returns: the linked node's name and the number of files written.
    @discardableResult
    public func downloadLink(
        _ url: String, to localPath: String?, password: String? = nil, progress: TransferProgress? = nil,
        fileProgress: (@Sendable (String, UInt64?) -> Void)? = nil
    ) async throws -> (name: String, files: Int) {
        let (linkId, node, nodeKey) = try await openLink(url, password: password)
        let attributes = try Self.linkAttributes(node, nodeKey: nodeKey)
        let target = localPath ?? attributes.name
        guard node.type == "folder" else {
            try Self.checkSize(attributes, of: node)
            try await fetchDecrypted(
                path: "/v1/l/\(linkId)/content", token: nil, fileKey: try Self.fileKey(node, nodeKey: nodeKey), total: node.length,
                to: target, progress: progress)
            return (attributes.name, 1)
        }
        var files = 0
        var seen: Set<String> = [node.id]
        var pending = [(folder: node, key: nodeKey, local: target, depth: 0)]
        while let (folder, key, local, depth) = pending.popLast() {
            guard depth < Limits.treeDepthMax else { throw ClientError(.limitExceeded, "the linked folder is deeper than \(Limits.treeDepthMax) levels") }
            try FileManager.default.createDirectory(atPath: local, withIntermediateDirectories: true)
            var names: Set<String> = []
            for child in try await linkChildren(linkId, folder: folder, folderKey: key) {
                // Two entries of one name would overwrite each other: a server never lists them
                // (names are unique per folder), so this listing was altered.
                guard names.insert(child.attributes.name.precomposedStringWithCanonicalMapping).inserted else {
                    throw ClientError(.decryptionFailed, "the linked folder lists two entries named \(child.attributes.name)")
                }
                // A server replaying old records could list a node twice or build a cycle.
                guard seen.insert(child.info.id).inserted else {
                    throw ClientError(.decryptionFailed, "the linked folder lists node \(child.info.id) twice")
                }
                let childPath = local + "/" + child.attributes.name
                if child.info.type == "folder" {
                    pending.append((child.info, child.key, childPath, depth + 1))
                    continue
                }
                try Self.checkSize(child.attributes, of: child.info)
                fileProgress?(childPath, child.attributes.size)
                try await fetchDecrypted(
                    path: "/v1/l/\(linkId)/nodes/\(child.info.id)/content", token: nil, fileKey: try Self.fileKey(child.info, nodeKey: child.key),
                    total: child.info.length, to: childPath, progress: progress)
                files += 1
            }
        }
        return (attributes.name, files)
    }

    /// The children of a folder a link reaches (the linked folder when `path` is nil, or a
    /// folder below it by its decrypted path, "a/b"), names decrypted here.
    public func listLink(_ url: String, path: String? = nil, password: String? = nil) async throws -> [Entry] {
        let (linkId, node, nodeKey) = try await openLink(url, password: password)
        guard node.type == "folder" else {
            let attributes = try Self.linkAttributes(node, nodeKey: nodeKey)
            return [Entry(id: node.id, name: attributes.name, type: node.type, size: attributes.size, modified: attributes.modified, objectId: nil)]
        }
        var folder = (info: node, key: nodeKey)
        for name in (path ?? "").split(separator: "/") where !name.isEmpty {
            guard let next = try await linkChildren(linkId, folder: folder.info, folderKey: folder.key).first(where: {
                $0.attributes.name == String(name) && $0.info.type == "folder"
            }) else { throw ClientError(.notFound, "no folder \(name) under this link") }
            folder = (next.info, next.key)
        }
        return try await linkChildren(linkId, folder: folder.info, folderKey: folder.key).map {
            Entry(id: $0.info.id, name: $0.attributes.name, type: $0.info.type, size: $0.attributes.size, modified: $0.attributes.modified, objectId: nil)
        }
    }

    /// A folder's children through a link: each key unwrapped under the folder's key (bound to
    /// both ids), each name decrypted and checked as a file name (a link's owner is a stranger:
    /// a name is never allowed to be a path).
    func linkChildren(_ linkId: String, folder: TreeNodeInfo, folderKey: SecretKey) async throws -> [(info: TreeNodeInfo, key: SecretKey, attributes: NodeAttributes)] {
        let list = try decode(NodeList.self, try await send(.GET, "/v1/l/\(linkId)/nodes?parent=\(folder.id)"))
        return try Self.openLinkChildren(list.nodes, folder: folder, folderKey: folderKey)
    }

    /// The synchronous part of `linkChildren` (kept out of the async function: the release
    /// compiler crashed splitting that coroutine when this was inline).
    static func openLinkChildren(
        _ nodes: [TreeNodeInfo], folder: TreeNodeInfo, folderKey: SecretKey
    ) throws -> [(info: TreeNodeInfo, key: SecretKey, attributes: NodeAttributes)] {
        // While the folder's key changes, a child not re-wrapped yet opens under the previous key.
        let located = Located(id: folder.id, key: folderKey, info: folder, attributes: nil, previousKey: try previousKey(of: folder, under: folderKey))
        var children: [(info: TreeNodeInfo, key: SecretKey, attributes: NodeAttributes)] = []
        for child in nodes {
            guard child.parent == folder.id, let wrapped = Base64URL.decode(child.wrappedKey) else {
                throw ClientError(.decryptionFailed, "the server listed node \(child.id), which is not in folder \(folder.id)")
            }
            let key = try unwrapChild(try WrappedKey(bytes: wrapped), id: child.id, in: located)
            children.append((child, key, try linkAttributes(child, nodeKey: key)))
        }
        return children
    }

    /// A file's sealed size must be what its (unauthenticated) ciphertext length implies.
    static func checkSize(_ attributes: NodeAttributes, of node: TreeNodeInfo) throws {
        guard let size = attributes.size else { return }
        guard let length = node.length, FileFormat.plaintextLength(ciphertextLength: UInt64(max(0, length))) == size else {
            throw ClientError(.decryptionFailed, "file \(node.id) is \(size) bytes, its stored length says otherwise")
        }
    }

    static func linkAttributes(_ node: TreeNodeInfo, nodeKey: SecretKey) throws -> NodeAttributes {
        guard let blob = Base64URL.decode(node.attributes) else { throw ClientError(.decryptionFailed, "malformed attributes of node \(node.id)") }
        let attributes = try AttributeBox.open(blob, nodeKey: nodeKey, nodeId: node.id)
        try attributes.validate()
        return attributes
    }

    /// Plaintext bytes `range` of the file behind a share link, with no account: only the
    /// chunks that cover the range travel, each verified on its own.
    public func readLink(_ url: String, range: Range<UInt64>, password: String? = nil) async throws -> [UInt8] {
        let (linkId, node, nodeKey) = try await openLink(url, password: password)
        guard let length = node.length else { throw ClientError(.invalidArgument, "the link is not to a file") }
        return try await readRange(
            path: "/v1/l/\(linkId)/content", token: nil, fileKey: try Self.fileKey(node, nodeKey: nodeKey), ciphertextLength: length, range: range)
    }
}
