import CoffreAPI
import CoffreModel
import Encryption
import Foundation
public import Sodium

/// A link as its owner sees it.
public struct LinkEntry: Codable, Sendable, Hashable {
    public let linkId: String
    public let nodeId: String
    public let expiresAt: Int64?
    public let createdAt: Int64
}

extension CoffreClient {
    /// Creates a share link to a file; the secret goes only into the returned URL's fragment.
    ///
    /// - Parameter publicHost: host[:port] for the URL (default: the first coordinator's).
    public func createLink(
        _ path: String, _ session: Session, expiresIn seconds: Int64? = nil, password: String? = nil,
        parameters: Argon2id.Parameters = .recommended, publicHost: String? = nil
    ) async throws -> (url: String, linkId: String) {
        let node = try await locate(path, session)
        guard let info = node.info, info.type == "file" else { throw ClientError(.invalidArgument, "links are to files: \(path) is not one") }
        let expiresAt = seconds.map { Int64(Date().timeIntervalSince1970 * 1000) + $0 * 1000 }
        let (record, secret) = try ShareLink.create(nodeKey: node.key, nodeId: info.id, password: password, parameters: parameters, expiresAt: expiresAt)
        let request = CreateLinkRequest(
            linkId: record.linkId, nodeId: info.id, record: String(decoding: try JSONEncoder().encode(record), as: UTF8.self), expiresAt: expiresAt)
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

    /// Opens a share link: its node record and node key, from the link id and the secret in
    /// the URL's fragment (which stays in this process).
    func openLink(_ url: String, password: String?) async throws -> (linkId: String, node: TreeNodeInfo, nodeKey: SecretKey) {
        let parsed = try ShareLink.parse(url)
        let link = try decode(PublicLink.self, try await send(.GET, "/v1/l/" + parsed.linkId))
        let record = try JSONDecoder().decode(LinkRecord.self, from: Data(link.link.record.utf8))
        guard record.linkId == parsed.linkId, record.nodeId == link.node.id else { throw ClientError(.decryptionFailed, "the link record does not match the link") }
        return (parsed.linkId, link.node, try ShareLink.open(record, secret: parsed.secret, password: password))
    }

    /// Downloads and decrypts the file behind a share link, with no account. The URL's
    /// fragment (the secret) stays in this process: only the link id is sent.
    /// - Returns: the file's name (from its decrypted attributes).
    public func downloadLink(_ url: String, to localPath: String?, password: String? = nil, progress: TransferProgress? = nil) async throws -> String {
        let (linkId, node, nodeKey) = try await openLink(url, password: password)
        guard let blob = Base64URL.decode(node.attributes) else { throw ClientError(.storageFailure, "malformed attributes") }
        let attributes = try AttributeBox.open(blob, nodeKey: nodeKey, nodeId: node.id)
        let fileKey = try Self.fileKey(node, nodeKey: nodeKey)
        try await fetchDecrypted(
            path: "/v1/l/\(linkId)/content", token: nil, fileKey: fileKey, total: node.length,
            to: localPath ?? attributes.name, progress: progress)
        return attributes.name
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
