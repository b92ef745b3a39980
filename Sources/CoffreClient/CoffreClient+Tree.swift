import AsyncHTTPClient
public import CoffreAPI
import CoffreModel
import DirectIO
import Encryption
import Foundation
import NIOCore
import NIOHTTP1

/// A file or folder as the user sees it (decrypted).
public struct Entry: Codable, Sendable, Hashable {
    public let id: String
    public let name: String
    /// "file" or "folder".
    public let type: String
    /// Plaintext bytes (files).
    public let size: UInt64?
    /// Milliseconds since 1970.
    public let modified: Int64?
    /// Object id on the cluster (files), for `coffre admin object`.
    public let objectId: String?
}

/// TransferProgress of a transfer: bytes done and total (nil when unknown).
public typealias TransferProgress = @Sendable (Int64, Int64?) -> Void

struct Located {
    let id: String
    let key: SecretKey
    let info: TreeNodeInfo?
    let attributes: NodeAttributes?
    /// The account whose tree holds the node, when it is not the caller's: a folder shared
    /// with the caller, or below one (sent as `?owner=` on every request about it).
    var owner: String? = nil
    /// A folder taking a new key: its previous key, for the children not re-wrapped yet.
    var previousKey: SecretKey? = nil

    /// A tree route for this node's tree: `/v1/nodes` + `suffix`, with the owner when shared.
    func route(_ suffix: String) -> String {
        guard let owner else { return "/v1/nodes" + suffix }
        return "/v1/nodes" + suffix + (suffix.contains("?") ? "&" : "?") + "owner=" + owner
    }
}

extension CoffreClient {
    func masterKey(_ session: Session) throws -> SecretKey {
        guard let bytes = Base64URL.decode(session.masterKey) else { throw ClientError(.unauthenticated, "session file is damaged: log in again") }
        return try SecretKey(bytes: bytes)
    }

    func root(_ session: Session) throws -> Located {
        Located(id: "root", key: NodeKeys.rootKey(masterKey: try masterKey(session)), info: nil, attributes: nil)
    }

    /// The decrypted children of a folder; `decryption_failed` naming those that do not open.
    func children(of folder: Located, _ session: Session) async throws -> [Located] {
        let (readable, unreadable) = try await readableChildren(of: folder, session)
        guard unreadable.isEmpty else { throw Self.unreadableError(unreadable, in: folder.id) }
        return readable
    }

    /// The children of a folder that open under its keys, and the records of those that do not
    /// (left by a faulty or hostile writer, or altered): listed apart, so that one such record
    /// cannot hide the others or block the folder's key change.
    func readableChildren(of folder: Located, includingTrashed: Bool = false, _ session: Session) async throws -> (readable: [Located], unreadable: [TreeNodeInfo]) {
        let list = try decode(
            NodeList.self, try await send(.GET, folder.route("?parent=" + folder.id + (includingTrashed ? "&trashed=true" : "")), token: session.token))
        var readable: [Located] = []
        var unreadable: [TreeNodeInfo] = []
        for info in list.nodes {
            guard info.parent == folder.id, let child = try? open(info, in: folder) else {
                unreadable.append(info)
                continue
            }
            readable.append(child)
        }
        return (readable, unreadable)
    }

    static func unreadableError(_ nodes: [TreeNodeInfo], in folder: String) -> ClientError {
        ClientError(
            .decryptionFailed,
            "\(nodes.count) node(s) in folder \(folder) cannot be decrypted: \(nodes.map(\.id).joined(separator: ", ")) (coffre rm --id ID --permanent removes one)")
    }

    /// A tree node's key and attributes, unwrapped and decrypted under its folder's key (or,
    /// while the folder takes a new key, under its previous one).
    func open(_ info: TreeNodeInfo, in folder: Located) throws -> Located {
        guard let wrapped = Base64URL.decode(info.wrappedKey), let blob = Base64URL.decode(info.attributes) else {
            throw ClientError(.storageFailure, "node \(info.id) has malformed keys")
        }
        let key = try Self.unwrapChild(try WrappedKey(bytes: wrapped), id: info.id, in: folder)
        let attributes = try AttributeBox.open(blob, nodeKey: key, nodeId: info.id)
        return Located(
            id: info.id, key: key, info: info, attributes: attributes, owner: folder.owner, previousKey: try Self.previousKey(of: info, under: key))
    }

    /// A folder taking a new key: its previous key (for the children not re-wrapped yet).
    static func previousKey(of info: TreeNodeInfo, under key: SecretKey) throws -> SecretKey? {
        guard let text = info.previousKey else { return nil }
        guard let bytes = Base64URL.decode(text) else { throw ClientError(.storageFailure, "node \(info.id) has a malformed previous key") }
        return try NodeKeys.unwrapPreviousKey(try WrappedKey(bytes: bytes), nodeId: info.id, under: key)
    }

    /// A child's node key under its folder's key, or its previous key while it changes.
    static func unwrapChild(_ wrapped: WrappedKey, id: String, in folder: Located) throws -> SecretKey {
        if let key = try? NodeKeys.unwrap(wrapped, childId: id, parentId: folder.id, under: folder.key) { return key }
        guard let previous = folder.previousKey else { throw EncryptionError.decryptionFailed }
        return try NodeKeys.unwrap(wrapped, childId: id, parentId: folder.id, under: previous)
    }

    /// The child of `folder` named `name`, or nil: one lookup by name tag, no listing.
    func child(named name: String, of folder: Located, _ session: Session) async throws -> Located? {
        // While a folder takes a new key, a child not re-wrapped yet has its tag under the old.
        var keys: [SecretKey] = [folder.key]
        if let previous = folder.previousKey { keys.append(previous) }
        var match: TreeNodeInfo? = nil
        for key in keys {
            let tag = NodeKeys.nameTag(name, folderKey: key)
            let path = folder.route("?parent=" + folder.id + "&name=" + tag)
            let list = try decode(NodeList.self, try await send(.GET, path, token: session.token))
            if let first = list.nodes.first {
                match = first
                break
            }
        }
        guard let info = match else { return nil }
        let found = try open(info, in: folder)
        // The server cannot forge a name (attributes are sealed), only answer with another node.
        guard found.attributes?.name == name else {
            throw ClientError(.storageFailure, "the coordinator answered a lookup of a name with another node")
        }
        return found
    }

    static func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init).filter { $0 != "." }
    }

    /// The node at `path` ("/" is the root; "@USER/FOLDER/..." is below a folder USER shared
    /// with this account): one lookup per folder on the way.
    func locate(_ path: String, _ session: Session) async throws -> Located {
        var current = try root(session)
        var names = Self.components(path)
        if path.hasPrefix("@") {
            guard names.count >= 2 else { throw ClientError(.invalidArgument, "a shared path is @USER/FOLDER[/...]: \(path)") }
            current = try await sharedFolder(owner: String(names[0].dropFirst()), name: names[1], session)
            names.removeFirst(2)
        }
        for name in names {
            guard current.info == nil || current.info?.type == "folder" else { throw ClientError(.notFound, "\(path): not a folder on the way") }
            guard let next = try await child(named: name, of: current, session) else {
                throw ClientError(.notFound, "no such file or folder: \(path)")
            }
            current = next
        }
        return current
    }

    func entry(_ located: Located) -> Entry {
        Entry(
            id: located.id, name: located.attributes?.name ?? "/", type: located.info?.type ?? "folder",
            size: located.attributes?.size, modified: located.attributes?.modified, objectId: located.info?.objectId)
    }

    static func newNodeId() -> String { Base64URL.encode((0..<16).map { _ in UInt8.random(in: 0...255) }) }

    /// The folder a new node goes into and the name it gets. A taken name is refused by the
    /// coordinator when the node is committed (see `nameTag`).
    func destination(_ path: String, _ session: Session) async throws -> (Located, String) {
        var parts = Self.components(path)
        guard let name = parts.popLast() else { throw ClientError(.invalidArgument, "a path to create needs a name") }
        try Self.checkName(name)
        let parent = try await locate(Self.rejoin(path, parts), session)
        guard parent.info == nil || parent.info?.type == "folder" else { throw ClientError(.invalidArgument, "\(parts.joined(separator: "/")) is not a folder") }
        return (parent, name)
    }

    /// Where an upload goes: `path` names a new file, or an existing folder to put
    /// `localName` in. One lookup per folder on the way and one for the last name.
    func uploadDestination(_ path: String, localName: String, _ session: Session) async throws -> (Located, String) {
        var parts = Self.components(path)
        if path.hasPrefix("@") && parts.count == 2 {
            // The shared folder itself: the file goes in it, under its local name.
            try Self.checkName(localName)
            return (try await locate(path, session), localName)
        }
        guard let last = parts.popLast() else {
            try Self.checkName(localName)
            return (try root(session), localName)
        }
        let folder = try await locate(Self.rejoin(path, parts), session)
        guard folder.info == nil || folder.info?.type == "folder" else { throw ClientError(.invalidArgument, "\(parts.joined(separator: "/")) is not a folder") }
        if let existing = try await child(named: last, of: folder, session) {
            guard existing.info?.type == "folder" else { throw ClientError(.nameTaken, "\(path) exists") }
            // Checked here too (the commit would refuse it), so as not to send the file first.
            try Self.checkName(localName)
            guard try await child(named: localName, of: existing, session) == nil else {
                throw ClientError(.nameTaken, "\(path.hasSuffix("/") ? path : path + "/")\(localName) exists")
            }
            return (existing, localName)
        }
        try Self.checkName(last)
        return (folder, last)
    }

    /// `parts` of `path` as a path again, keeping a shared path's "@USER" start.
    static func rejoin(_ path: String, _ parts: [String]) -> String {
        path.hasPrefix("@") ? parts.joined(separator: "/") : "/" + parts.joined(separator: "/")
    }

    static func checkName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= Limits.fileNameSizeMax else {
            throw ClientError(.invalidArgument, "a name is 1...\(Limits.fileNameSizeMax) bytes of UTF-8")
        }
    }

    /// Turns the coordinator's `name_taken` into an error that names the path.
    func naming<T>(_ path: String, _ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let error as ClientError where error.code == .nameTaken {
            throw ClientError(.nameTaken, "\(path) exists")
        }
    }

    /// A write that wraps a key or tags a name under a folder's key, done again from the
    /// start (the folder read afresh) when that key changed meanwhile (`key_changed`), or when
    /// the folder's key is changing (`key_changing`): this account's own changes are finished
    /// first; another owner's, waited for a moment.
    /// - Parameter conflicts: also redo on `conflict` (a record the write is conditioned on
    ///   changed meanwhile: a move).
    func underCurrentKeys<T>(_ session: Session, conflicts: Bool = false, _ work: () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await work()
            } catch let error as ClientError
                where (error.code == .keyChanged || (conflicts && error.code == .conflict)) && attempt < Limits.keyChangeAttemptsMax
            {
                attempt += 1
            } catch let error as ClientError where error.code == .keyChanging && attempt < Limits.keyChangeAttemptsMax {
                // This account's own changes are finished here (an error there is not this
                // write's: it is retried, and reports its own); another owner's, waited for.
                if ((try? await finishKeyChanges(session)) ?? 0) == 0 { try await Task.sleep(for: .milliseconds(250 << attempt)) }
                attempt += 1
            }
        }
    }

    // MARK: - Commands

    public func list(_ path: String, _ session: Session) async throws -> [Entry] {
        let node = try await locate(path, session)
        guard node.info == nil || node.info?.type == "folder" else { return [entry(node)] }
        return try await children(of: node, session).map(entry).sorted { $0.name < $1.name }
    }

    /// What `list` gives, and the ids of the children that cannot be decrypted (`list` refuses
    /// a folder with any): for `coffre ls`, which shows the rest and names these.
    public func listing(_ path: String, _ session: Session) async throws -> (entries: [Entry], unreadable: [String]) {
        let node = try await locate(path, session)
        guard node.info == nil || node.info?.type == "folder" else { return ([entry(node)], []) }
        let (readable, unreadable) = try await readableChildren(of: node, session)
        return (readable.map(entry).sorted { $0.name < $1.name }, unreadable.map(\.id).sorted())
    }

    public func mkdir(_ path: String, _ session: Session) async throws -> Entry {
        try await underCurrentKeys(session) { try await makeFolder(path, session) }
    }

    func makeFolder(_ path: String, _ session: Session) async throws -> Entry {
        let (parent, name) = try await destination(path, session)
        let id = Self.newNodeId()
        let key = SecretKey.random()
        let attributes = NodeAttributes(name: name, modified: Int64(Date().timeIntervalSince1970 * 1000))
        let request = CreateFolderRequest(
            id: id, parent: parent.id, attributes: Base64URL.encode(try AttributeBox.seal(attributes, nodeKey: key, nodeId: id)),
            wrappedKey: Base64URL.encode(NodeKeys.wrap(key, childId: id, parentId: parent.id, under: parent.key).bytes),
            nameTag: NodeKeys.nameTag(name, folderKey: parent.key), parentKeyGeneration: parent.info?.keyGeneration)
        _ = try await naming(path) { try await send(.POST, parent.route(""), token: session.token, json: request) }
        return Entry(id: id, name: name, type: "folder", size: nil, modified: attributes.modified, objectId: nil)
    }

    /// Encrypts a local file and uploads it to `remotePath` (a new name, or an existing
    /// folder to keep the local name).
    public func upload(_ localPath: String, to remotePath: String, _ session: Session, progress: TransferProgress? = nil) async throws -> Entry {
        try await underCurrentKeys(session) { try await uploadOnce(localPath, to: remotePath, session, progress: progress) }
    }

    func uploadOnce(_ localPath: String, to remotePath: String, _ session: Session, progress: TransferProgress?) async throws -> Entry {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: localPath), let size = (attributes[.size] as? NSNumber)?.uint64Value,
            let handle = FileHandle(forReadingAtPath: localPath)
        else { throw ClientError(.invalidArgument, "cannot read \(localPath)") }
        defer { try? handle.close() }
        guard size <= Limits.formatPlaintextMax else {
            throw ClientError(.limitExceeded, "\(localPath) is \(ByteCount(Int64(size))); one file holds at most \(ByteCount(Int64(Limits.formatPlaintextMax)))")
        }
        let (parent, name) = try await uploadDestination(remotePath, localName: URL(fileURLWithPath: localPath).lastPathComponent, session)
        let id = Self.newNodeId()
        let nodeKey = SecretKey.random()
        let fileKey = FileKey.random()
        let modified = ((attributes[.modificationDate] as? Date) ?? Date()).timeIntervalSince1970 * 1000
        let blob = try AttributeBox.seal(NodeAttributes(name: name, size: size, modified: Int64(modified)), nodeKey: nodeKey, nodeId: id)
        let wrappedFileKey = NodeKeys.wrapFileKey(fileKey, nodeId: id, under: nodeKey)
        let length = Int64(FileFormat.ciphertextLength(plaintextLength: size))
        // No quota check here: the coordinator refuses an upload whose declared length does
        // not fit (`quota_exceeded`) before reading its body, which saves a round trip.
        let makeBody = { () throws -> HTTPClientRequest.Body in
            try handle.seek(toOffset: 0)
            let stream = EncryptedFileStream(reader: try EncryptingReader(fileKey: fileKey), handle: handle, total: length, progress: progress)
            return .stream(stream, length: .known(length))
        }
        var headers = [
            (ContentHeaders.parent, parent.id), (ContentHeaders.attributes, Base64URL.encode(blob)),
            (ContentHeaders.wrappedKey, Base64URL.encode(NodeKeys.wrap(nodeKey, childId: id, parentId: parent.id, under: parent.key).bytes)),
            (ContentHeaders.fileKey, Base64URL.encode(wrappedFileKey.bytes)), ("content-type", "application/octet-stream"),
            (ContentHeaders.nameTag, NodeKeys.nameTag(name, folderKey: parent.key)),
        ]
        if let generation = parent.info?.keyGeneration { headers.append((ContentHeaders.parentKeyGeneration, String(generation))) }
        let answer = try await naming(remotePath) {
            try await send(.PUT, parent.route("/\(id)/content"), token: session.token, headers: headers, body: makeBody)
        }
        let info = try decode(TreeNodeInfo.self, answer)
        return Entry(id: id, name: name, type: "file", size: size, modified: Int64(modified), objectId: info.objectId)
    }

    /// Downloads and decrypts a file to `localPath` (written to a temporary file first and
    /// moved into place only once every chunk verified).
    public func download(_ remotePath: String, to localPath: String, _ session: Session, progress: TransferProgress? = nil) async throws {
        let node = try await locate(remotePath, session)
        guard let info = node.info, info.type == "file" else { throw ClientError(.invalidArgument, "\(remotePath) is not a file") }
        let fileKey = try Self.fileKey(info, nodeKey: node.key)
        try await fetchDecrypted(path: node.route("/\(info.id)/content"), token: session.token, fileKey: fileKey, total: info.length, to: localPath, progress: progress)
    }

    static func fileKey(_ info: TreeNodeInfo, nodeKey: SecretKey) throws -> FileKey {
        guard let text = info.fileKey, let bytes = Base64URL.decode(text) else { throw ClientError(.storageFailure, "file \(info.id) has no file key") }
        return try NodeKeys.unwrapFileKey(try WrappedKey(bytes: bytes), nodeId: info.id, under: nodeKey)
    }

    func fetchDecrypted(path: String, token: String?, fileKey: FileKey, total: Int64?, to localPath: String, progress: TransferProgress?) async throws {
        let temporary = localPath + ".coffre-partial"
        // Direct I/O: a buffered write of the plaintext costs more CPU here than TLS,
        // decryption and the transfer together (Docs/performance.md, "Cluster").
        let output: SequentialFileWriter
        do {
            output = try SequentialFileWriter(creating: temporary)
        } catch {
            throw ClientError(.invalidArgument, "cannot write \(localPath): \(error.message)")
        }
        var succeeded = false
        defer {
            if !succeeded {
                output.discard()
                try? FileManager.default.removeItem(atPath: temporary)
            }
        }
        var failures: [String] = []
        for endpoint in endpoints {
            var request = HTTPClientRequest(url: endpoint + path)
            if let token { request.headers.add(name: "authorization", value: "Bearer " + token) }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: .minutes(30))
            } catch {
                failures.append("\(endpoint): \(error)")
                continue
            }
            guard response.status.code == 200 else {
                let bytes = try await response.body.collect(upTo: 1 << 20)
                if let answer = try? JSONDecoder().decode(APIErrorBody.self, from: Data(bytes.readableBytesView)) {
                    throw ClientError(ErrorCode(answer.error.code), answer.error.message)
                }
                throw ClientError(.storageFailure, "\(endpoint) answered \(response.status.code)")
            }
            var writer = DecryptingWriter(fileKey: fileKey)
            var done: Int64 = 0
            for try await piece in response.body {
                done += Int64(piece.readableBytes)
                let plaintext = try writer.feed(piece.readableBytesView)
                if !plaintext.isEmpty { try plaintext.withUnsafeBytes { try output.write($0) } }
                progress?(done, total)
            }
            let last = try writer.finish()
            try last.withUnsafeBytes { try output.write($0) }
            try output.finish(sync: true)
            if FileManager.default.fileExists(atPath: localPath) { try FileManager.default.removeItem(atPath: localPath) }
            try FileManager.default.moveItem(atPath: temporary, toPath: localPath)
            succeeded = true
            return
        }
        throw ClientError(.unavailable, "no coordinator answered: \(failures.joined(separator: "; "))")
    }

    /// Downloads and decrypts plaintext bytes `range` of a file: only the chunks that cover
    /// it travel (a `Range` request), each verified on its own.
    public func read(_ remotePath: String, range: Range<UInt64>, _ session: Session) async throws -> [UInt8] {
        let node = try await locate(remotePath, session)
        guard let info = node.info, info.type == "file", let length = info.length else { throw ClientError(.invalidArgument, "\(remotePath) is not a file") }
        let fileKey = try Self.fileKey(info, nodeKey: node.key)
        return try await readRange(path: node.route("/\(info.id)/content"), token: session.token, fileKey: fileKey, ciphertextLength: length, range: range)
    }

    /// Plaintext bytes `range` of the file whose ciphertext (`ciphertextLength` bytes) is
    /// served at `path`: the header, then only the chunks that cover the range, each
    /// verified on its own.
    func readRange(path: String, token: String?, fileKey: FileKey, ciphertextLength length: Int64, range: Range<UInt64>) async throws -> [UInt8] {
        guard let size = FileFormat.plaintextLength(ciphertextLength: UInt64(length)), range.upperBound <= size else {
            throw ClientError(.invalidArgument, "range \(range.lowerBound)-\(range.upperBound) is outside the file")
        }
        guard !range.isEmpty else { return [] }
        let header = try await send(.GET, path, token: token, headers: [("range", "bytes=0-\(FileFormat.headerSize - 1)")])
        let chunk = UInt64(FileFormat.chunkSize)
        let first = range.lowerBound / chunk
        let last = (range.upperBound - 1) / chunk
        let start = UInt64(FileFormat.headerSize) + first * UInt64(FileFormat.sealedChunkSize)
        let end = min(UInt64(length), UInt64(FileFormat.headerSize) + (last + 1) * UInt64(FileFormat.sealedChunkSize))
        let body = try await send(.GET, path, token: token, headers: [("range", "bytes=\(start)-\(end - 1)")])
        let sealed = Array(body.body.readableBytesView)
        let headerBytes = Array(header.body.readableBytesView)
        let opener = try headerBytes.withUnsafeBytes { try FileDecryptor(fileKey: fileKey, header: $0) }
        var plaintext: [UInt8] = []
        for index in first...last {
            let offset = Int((index - first) * UInt64(FileFormat.sealedChunkSize))
            let piece = Array(sealed[offset..<min(sealed.count, offset + FileFormat.sealedChunkSize)])
            var out = [UInt8](repeating: 0, count: piece.count)
            let count = try piece.withUnsafeBytes { p in
                try out.withUnsafeMutableBytes { o in try opener.openChunk(index: index, ciphertextLength: UInt64(length), sealed: p, into: o) }
            }
            plaintext += out[..<count]
        }
        let skip = Int(range.lowerBound - first * chunk)
        return Array(plaintext[skip..<(skip + Int(range.count))])
    }

    /// Moves and/or renames a node. The node key is rewrapped for a new parent.
    public func move(_ from: String, to: String, _ session: Session) async throws -> Entry {
        try await underCurrentKeys(session, conflicts: true) { try await moveOnce(from, to: to, session) }
    }

    func moveOnce(_ from: String, to: String, _ session: Session) async throws -> Entry {
        let node = try await locate(from, session)
        guard let info = node.info, let attributes = node.attributes else { throw ClientError(.invalidArgument, "cannot move the root") }
        var target = to
        if let existing = try? await locate(to, session), existing.info == nil || existing.info?.type == "folder" {
            target = (to.hasSuffix("/") ? to : to + "/") + attributes.name
        }
        let (parent, name) = try await destination(target, session)
        guard parent.owner == node.owner else {
            throw ClientError(.invalidArgument, "a move stays within one tree: copy between yours and a shared folder instead")
        }
        var renamed = attributes
        renamed.name = name
        let request = UpdateNodeRequest(
            parent: parent.id,
            attributes: Base64URL.encode(try AttributeBox.seal(renamed, nodeKey: node.key, nodeId: info.id)),
            wrappedKey: Base64URL.encode(NodeKeys.wrap(node.key, childId: info.id, parentId: parent.id, under: parent.key).bytes),
            nameTag: NodeKeys.nameTag(name, folderKey: parent.key), parentKeyGeneration: parent.info?.keyGeneration)
        _ = try await naming(target) { try await send(.PATCH, node.route("/" + info.id), token: session.token, json: request) }
        return Entry(id: info.id, name: name, type: info.type, size: renamed.size, modified: renamed.modified, objectId: info.objectId)
    }

    /// Deletes a file, or a folder with `recursive`.
    /// Puts a file, or a folder with `recursive`, into the rubbish bin of the tree's owner
    /// (`permanent` false), or deletes it for good: a folder with everything below it, what is
    /// in the bin too, in one request.
    @discardableResult
    public func remove(_ path: String, recursive: Bool, permanent: Bool = false, _ session: Session) async throws -> BinEntry? {
        if path.hasPrefix("@") && Self.components(path).count == 2 {
            throw ClientError(.forbidden, "\(path) is shared with you: only its owner deletes it")
        }
        let node = try await locate(path, session)
        guard let info = node.info else { throw ClientError(.invalidArgument, "cannot remove the root") }
        return try await remove(node, info: info, recursive: recursive, permanent: permanent, what: path, session)
    }

    /// The same by id, with no key (what cannot be decrypted has no name to reach it by). In
    /// `owner`'s tree when given (a folder shared with this account to write).
    @discardableResult
    public func removeNode(id: String, recursive: Bool, permanent: Bool = false, owner: String? = nil, _ session: Session) async throws -> BinEntry? {
        let node = Located(id: id, key: try root(session).key, info: nil, attributes: nil, owner: owner)
        let info = try decode(TreeNodeInfo.self, try await send(.GET, node.route("/" + id), token: session.token))
        return try await remove(node, info: info, recursive: recursive, permanent: permanent, what: "node \(id)", session)
    }

    private func remove(_ node: Located, info: TreeNodeInfo, recursive: Bool, permanent: Bool, what: String, _ session: Session) async throws -> BinEntry? {
        if info.type == "folder" && !recursive {
            let inside = try decode(NodeList.self, try await send(.GET, node.route("?parent=" + info.id + "&trashed=true"), token: session.token)).nodes
            guard inside.isEmpty else { throw ClientError(.conflict, "\(what) is a folder that is not empty (use --recursive)") }
        }
        guard permanent else { return try decode(BinEntry.self, try await send(.POST, node.route("/" + info.id + "/trash"), token: session.token)) }
        _ = try await send(.DELETE, node.route("/" + info.id + (info.type == "folder" ? "?recursive=true" : "")), token: session.token)
        return nil
    }

    /// The account's rubbish bin, decrypted: where each node was, and when it goes for good.
    /// Entries that do not decrypt are returned by id, with an empty path.
    public func bin(_ session: Session) async throws -> [BinItem] {
        let root = try root(session)
        var items: [BinItem] = []
        var after: String?
        repeat {
            let page = try decode(BinList.self, try await send(.GET, "/v1/bin" + (after.map { "?after=" + $0 } ?? ""), token: session.token))
            for entry in page.entries {
                var folder = root
                var names: [String] = []
                var opened: Located?
                do {
                    for ancestor in entry.ancestors {
                        folder = try open(ancestor, in: folder)
                        names.append(folder.attributes?.name ?? ancestor.id)
                    }
                    opened = try open(entry.node, in: folder)
                } catch {
                    opened = nil
                }
                items.append(BinItem(
                    id: entry.node.id, path: opened.map { "/" + (names + [$0.attributes?.name ?? entry.node.id]).joined(separator: "/") } ?? "",
                    type: entry.node.type, size: opened?.attributes?.size, trashedAt: entry.node.trashedAt ?? 0, purgeAt: entry.purgeAt))
            }
            after = page.next
        } while after != nil
        return items.sorted { ($0.path, $0.trashedAt) < ($1.path, $1.trashedAt) }
    }

    /// Restores a node of the bin by the path it had (the latest put there, when several had
    /// it) or by id.
    public func restore(_ pathOrId: String, byId: Bool = false, _ session: Session) async throws -> BinItem {
        let items = try await bin(session)
        let wanted = byId ? pathOrId : "/" + Self.components(pathOrId).joined(separator: "/")
        guard let item = items.filter({ byId ? $0.id == wanted : $0.path == wanted }).max(by: { $0.trashedAt < $1.trashedAt }) else {
            throw ClientError(.notFound, "nothing in the rubbish bin \(byId ? "has id" : "was at") \(pathOrId) (coffre ls --bin lists it)")
        }
        _ = try await send(.POST, "/v1/nodes/\(item.id)/restore", token: session.token)
        return item
    }

    /// Deletes everything in the bin for good.
    public func emptyBin(_ session: Session) async throws -> PurgeResult {
        try decode(PurgeResult.self, try await send(.DELETE, "/v1/bin", token: session.token))
    }
}

/// A node in the rubbish bin, as its owner sees it (decrypted here).
public struct BinItem: Codable, Sendable, Hashable {
    public let id: String
    /// Where it was, from the root; empty when it does not decrypt.
    public let path: String
    public let type: String
    public let size: UInt64?
    /// Milliseconds since 1970.
    public let trashedAt: Int64
    public let purgeAt: Int64
}

/// Plaintext from a file, encrypted on demand as the upload pulls it.
struct EncryptedFileStream: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let reader: EncryptingReader
    let handle: FileHandle
    let total: Int64
    let progress: TransferProgress?

    final class AsyncIterator: AsyncIteratorProtocol, @unchecked Sendable {
        var reader: EncryptingReader
        let handle: FileHandle
        let total: Int64
        let progress: TransferProgress?
        var sent: Int64 = 0

        init(_ stream: EncryptedFileStream) {
            reader = stream.reader
            handle = stream.handle
            total = stream.total
            progress = stream.progress
        }

        /// The piece handed out last time: reused when the HTTP client is done with it
        /// (`clear()` allocates anew only while it still holds it).
        var buffer = ByteBufferAllocator().buffer(capacity: EncryptingReader.pieceSizeMax)

        func next() async throws -> ByteBuffer? {
            let handle = self.handle
            buffer.clear()
            let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: EncryptingReader.pieceSizeMax) { output in
                try reader.next(into: output) { plaintext in
                    var count = read(handle.fileDescriptor, plaintext.baseAddress, plaintext.count)
                    while count < 0 && errno == EINTR { count = read(handle.fileDescriptor, plaintext.baseAddress, plaintext.count) }
                    guard count >= 0 else { throw ClientError(.invalidArgument, "cannot read the file: \(String(cString: strerror(errno)))") }
                    return count
                }
            }
            guard count > 0 else { return nil }
            sent += Int64(count)
            progress?(sent, total)
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(self) }
}
