import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird
import Metadata
import NIOCore
import Synchronization

/// Whether an upload's handler began reading the request body.
final class BodyReading: Sendable {
    let started = Atomic<Bool>(false)
}

extension CoordinatorServer {
    static let rootId = "root"

    func treeKey(_ account: String, _ node: String) -> String { Keyspace.treeNode(account, node) }
    /// The entry of a node in its parent's index. Its value is a copy of the node's record,
    /// written in the same transaction as the record, so that a listing is one range read
    /// rather than a read per child.
    func childKey(_ account: String, _ parent: String, _ node: String) -> String { Keyspace.child(account, parent, node) }

    /// A child's name tag in its folder -> the child's id. The commit that creates, moves or
    /// renames a node requires the tag to be absent, so names are unique per folder even when
    /// two clients race.
    func nameKey(_ account: String, _ parent: String, _ tag: String) -> String { Keyspace.name(account, parent, tag) }

    func validNameTag(_ tag: String?) throws -> String {
        guard let tag, let bytes = Base64URL.decode(tag), bytes.count == 16 else {
            throw APIError(.invalidArgument, "a name tag is base64url of 16 bytes")
        }
        return tag
    }

    /// After a refused commit: a conflict saying which of the node id or the name is taken,
    /// or nil when neither is (something else changed: worth another try).
    func takenConflict(_ account: String, id: String, parent: String, tag: String?) async throws -> APIError? {
        if try await metadata.get(treeKey(account, id)) != nil { return APIError(.conflict, "node \(id) exists") }
        if let tag, try await metadata.get(nameKey(account, parent, tag)) != nil {
            return APIError(.nameTaken, "the folder already holds a node of that name")
        }
        return nil
    }

    func validNodeId(_ id: String) throws -> String {
        guard id != Self.rootId, let bytes = Base64URL.decode(id), (8...32).contains(bytes.count) else {
            throw APIError(.invalidArgument, "a node id is base64url of 8...32 random bytes")
        }
        return id
    }

    /// The parent must be the root or one of the account's folders; returns the folder's
    /// record and revision (nil for the root), for `childGuard`.
    /// - Parameters:
    ///   - naming: a child gets a name in the folder (created, moved in, renamed): refused
    ///     (`key_changing`) while the folder's key changes or must change, since its name tags
    ///     change with it, and (`key_changed`) when `generation` is not the folder's key's.
    ///   - generation: the folder key generation the request's wrapped key and name tag are
    ///     under (nil: 0).
    @discardableResult
    func checkParent(_ account: String, _ parent: String, naming: Bool = false, generation: Int64? = nil) async throws -> (TreeNodeInfo, Int64)? {
        guard parent != Self.rootId else {
            if naming, let generation, generation != 0 { throw APIError(.keyChanged, "the root's key generation is 0, not \(generation)") }
            return nil
        }
        guard let (node, revision) = try await read(TreeNodeInfo.self, treeKey(account, parent)), node.type == "folder" else {
            throw APIError(.notFound, "no folder \(parent)")
        }
        if naming {
            if node.trashedAt != nil { throw APIError(.conflict, "folder \(parent) is in the rubbish bin: restore it first") }
            if node.previousKey != nil {
                throw APIError(.keyChanging, "folder \(parent) is getting a new key (a share ended): its owner's client finishes the change (coffre rekey); try again then")
            }
            if node.keyPending == true {
                throw APIError(.keyChanging, "folder \(parent) must get a new key first (a share above it ended): its owner's client finishes the change (coffre rekey)")
            }
            if (generation ?? 0) != (node.keyGeneration ?? 0) {
                throw APIError(.keyChanged, "folder \(parent) has key generation \(node.keyGeneration ?? 0), the request used \(generation ?? 0): read it again")
            }
        }
        return (node, revision)
    }

    /// What a commit that puts a child into a folder adds, so that it cannot race a delete of
    /// that folder: the condition that the folder is unchanged since `checkParent`, and a
    /// rewrite of its record (a new revision), so that a delete that found the folder empty
    /// before this commit fails its own condition and looks again. The root cannot be deleted.
    func childGuard(_ account: String, _ parent: (TreeNodeInfo, Int64)?) -> ([MetadataCondition], [MetadataMutation]) {
        guard let (folder, revision) = parent else { return ([], []) }
        return ([.revision(treeKey(account, folder.id), revision)], [.put(treeKey(account, folder.id), encode(folder))])
    }

    /// A key generation from a request: nil or 0...2^53 (a JSON number every client reads).
    func validGeneration(_ generation: Int64?) throws -> Int64? {
        guard let generation else { return nil }
        guard (0...(1 << 53)).contains(generation) else { throw APIError(.invalidArgument, "a key generation is 0...2^53, got \(generation)") }
        return generation == 0 ? nil : generation
    }

    func blob(_ text: String?, _ what: String, max: Int = 4096) throws -> String {
        guard let text, let bytes = Base64URL.decode(text), !bytes.isEmpty, bytes.count <= max else {
            throw APIError(.invalidArgument, "\(what) must be base64url of 1...\(max) bytes")
        }
        return text
    }

    func createFolder(_ request: Request) async throws -> Response {
        let body = try await decodeBody(CreateFolderRequest.self, request)
        let account = try await treeAccess(request, at: body.parent, write: true).account
        let id = try validNodeId(body.id)
        let tag = try validNameTag(body.nameTag)
        let node = TreeNodeInfo(
            id: id, parent: body.parent, type: "folder", attributes: try blob(body.attributes, "attributes", max: Limits.attributesSizeMax + 29),
            wrappedKey: try blob(body.wrappedKey, "wrappedKey", max: 61), fileKey: nil, length: nil, objectId: nil, createdAt: now(), nameTag: tag,
            parentKeyGeneration: try validGeneration(body.parentKeyGeneration))
        var created = false
        for _ in 0..<Limits.treeCommitAttemptsMax where !created {
            let (guardConditions, guardMutations) = childGuard(
                account.id, try await checkParent(account.id, body.parent, naming: true, generation: body.parentKeyGeneration))
            created = try await metadata.commit(
                if: [.absent(treeKey(account.id, id)), .absent(nameKey(account.id, body.parent, tag))] + guardConditions,
                then: [
                    .put(treeKey(account.id, id), encode(node)), .put(childKey(account.id, body.parent, id), encode(node)),
                    .put(nameKey(account.id, body.parent, tag), Array(id.utf8)),
                ] + guardMutations) != nil
            // Refused: a taken id or name ends it; a folder that changed is read again.
            if !created, let conflict = try await takenConflict(account.id, id: id, parent: body.parent, tag: tag) { throw conflict }
        }
        guard created else { throw APIError(.conflict, "folder \(body.parent) kept changing; try again") }
        return try jsonResponse(node, status: .created)
    }

    func listChildren(_ request: Request) async throws -> Response {
        let parent = request.uri.queryParameters.get("parent").map { String($0) } ?? Self.rootId
        let access = try await treeAccess(request, at: parent, write: false)
        let account = access.account
        try await checkParent(account.id, parent)
        if let name = request.uri.queryParameters.get("name") {
            // One child by its name tag: one read for the id, one for the record.
            let tag = try validNameTag(String(name))
            guard let entry = try await metadata.get(nameKey(account.id, parent, tag)),
                let (node, _) = try await read(TreeNodeInfo.self, treeKey(account.id, String(decoding: entry.value, as: UTF8.self)))
            else { return try jsonResponse(NodeList(nodes: [])) }
            return try jsonResponse(NodeList(nodes: node.trashedAt == nil ? [node] : []))
        }
        // What is in the rubbish bin is listed on demand only (a key change re-wraps it too).
        let all = try await children(account.id, parent)
        // (The owner's only: what it put in its bin is not shown to those it shares with.)
        let trashed = request.uri.queryParameters.get("trashed") == "true" && access.sharedFolder == nil
        return try jsonResponse(NodeList(nodes: trashed ? all : all.filter { $0.trashedAt == nil }))
    }

    /// Every child of a folder (or of the root), from the folder's index.
    func children(_ account: String, _ parent: String) async throws -> [TreeNodeInfo] {
        var nodes: [TreeNodeInfo] = []
        var after: String?
        repeat {
            let page = try await metadata.list(prefix: Keyspace.children(account, parent), after: after, limit: Limits.metadataListPageMax)
            for entry in page {
                // An entry from before the index carried records: read the record itself.
                if entry.value.isEmpty {
                    let id = String(entry.key.split(separator: "/").last ?? "")
                    if let (node, _) = try await read(TreeNodeInfo.self, treeKey(account, id)) { nodes.append(node) }
                    continue
                }
                do {
                    nodes.append(try JSONDecoder().decode(TreeNodeInfo.self, from: Data(entry.value)))
                } catch {
                    throw APIError(.storageFailure, "index entry \(entry.key) is unreadable: \(error)")
                }
            }
            after = page.count == Limits.metadataListPageMax ? page.last?.key : nil
        } while after != nil
        return nodes
    }

    func ownedNode(_ request: Request, _ context: ServiceContext) async throws -> TreeNodeInfo {
        let id = try validNodeId(try context.parameters.require("id"))
        let account = try await treeAccess(request, at: id, write: false).account
        guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(account.id, id)) else { throw APIError(.notFound, "no node \(id)") }
        return node
    }

    func updateNode(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let id = try validNodeId(try context.parameters.require("id"))
        let body = try await decodeBody(UpdateNodeRequest.self, request)
        let access = try await treeAccess(request, at: id, write: true)
        let account = access.account
        guard access.sharedFolder != id else { throw APIError(.forbidden, "a shared folder is renamed or moved by its owner only") }
        if let parent = body.parent, access.sharedFolder != nil {
            // Within the owner's tree, and only between folders shared with the caller to write.
            _ = try await treeAccess(request, at: parent, write: true)
        }
        guard let (node, revision) = try await read(TreeNodeInfo.self, treeKey(account.id, id)) else { throw APIError(.notFound, "no node \(id)") }
        guard node.trashedAt == nil else { throw APIError(.conflict, "node \(id) is in the rubbish bin: restore it first") }
        let parent = body.parent ?? node.parent
        let tag = try body.nameTag.map { try validNameTag($0) } ?? node.nameTag
        if (parent != node.parent || body.attributes != nil) && body.nameTag == nil {
            throw APIError(.invalidArgument, "a move or a rename needs the name tag in the (new) folder")
        }
        var destination: (TreeNodeInfo, Int64)?
        let generation = try validGeneration(body.parentKeyGeneration)
        if parent != node.parent {
            guard body.wrappedKey != nil else { throw APIError(.invalidArgument, "a move needs the node key wrapped for its new parent") }
            destination = try await checkParent(account.id, parent, naming: true, generation: generation)
            try await checkNotInside(account.id, moving: id, into: parent)
        } else if body.nameTag != nil || body.wrappedKey != nil {
            // A rename: its tag is under the folder's key, which must not change meanwhile.
            destination = try await checkParent(account.id, parent, naming: true, generation: generation)
        }
        var updated = TreeNodeInfo(
            id: id, parent: parent, type: node.type,
            attributes: try body.attributes.map { try blob($0, "attributes", max: Limits.attributesSizeMax + 29) } ?? node.attributes,
            wrappedKey: try body.wrappedKey.map { try blob($0, "wrappedKey", max: 61) } ?? node.wrappedKey,
            fileKey: node.fileKey, length: node.length, objectId: node.objectId, createdAt: node.createdAt, nameTag: tag,
            previousKey: node.previousKey, keyGeneration: node.keyGeneration,
            parentKeyGeneration: parent != node.parent || body.nameTag != nil || body.wrappedKey != nil ? generation : node.parentKeyGeneration,
            keyPending: node.keyPending)
        var conditions: [MetadataCondition] = [.revision(treeKey(account.id, id), revision)]
        var due: [MetadataMutation] = []
        if parent != node.parent, node.type == "folder", node.parent != Self.rootId,
            let (source, sourceRevision) = try await read(TreeNodeInfo.self, treeKey(account.id, node.parent))
        {
            // A folder leaving a folder whose key is changing or due had its key wrapped under
            // a key known to whoever made that change due: its own key changes too, wherever it
            // goes. The source must not become due (listed or flagged) unseen before this commits.
            let sourceListed = Keyspace.keyChange(owner: account.id, node: node.parent)
            let listed = try await metadata.get(sourceListed) != nil
            conditions.append(.revision(treeKey(account.id, node.parent), sourceRevision))
            if !listed { conditions.append(.absent(sourceListed)) }
            if listed || source.keyPending == true || source.previousKey != nil {
                updated.keyPending = true
                due.append(.put(Keyspace.keyChange(owner: account.id, node: id), []))
            }
        }
        var mutations: [MetadataMutation] = [.put(treeKey(account.id, id), encode(updated)), .put(childKey(account.id, parent, id), encode(updated))] + due
        if parent != node.parent { mutations.append(.delete(childKey(account.id, node.parent, id))) }
        let (guardConditions, guardMutations) = childGuard(account.id, destination)
        conditions += guardConditions
        mutations += guardMutations
        if let tag, parent != node.parent || tag != node.nameTag {
            if let old = node.nameTag { mutations.append(.delete(nameKey(account.id, node.parent, old))) }
            mutations.append(.put(nameKey(account.id, parent, tag), Array(id.utf8)))
            conditions.append(.absent(nameKey(account.id, parent, tag)))
        }
        guard try await metadata.commit(if: conditions, then: mutations) != nil else {
            if let tag, try await metadata.get(nameKey(account.id, parent, tag)) != nil {
                throw APIError(.nameTaken, "the folder already holds a node of that name")
            }
            // The folder's key may have changed meanwhile: say so (`key_changed`, `key_changing`).
            if destination != nil { try await checkParent(account.id, parent, naming: true, generation: generation) }
            throw APIError(.conflict, "node \(id) changed meanwhile; try again")
        }
        return try jsonResponse(updated)
    }

    /// A folder cannot move into itself or below itself.
    func checkNotInside(_ account: String, moving id: String, into parent: String) async throws {
        var current = parent
        var steps = 0
        while current != Self.rootId, steps < Limits.treeDepthMax {
            guard current != id else { throw APIError(.invalidArgument, "cannot move a folder inside itself") }
            guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(account, current)) else { break }
            current = node.parent
            steps += 1
        }
    }

    /// `DELETE /v1/nodes/{id}`: a file, or an empty folder, for good (204). With
    /// `?recursive=true`, a folder and everything below it, the rubbish bin's entries among
    /// them too (200, what was removed). Not through the bin: `coffre rm --permanent`.
    func deleteNode(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let id = try validNodeId(try context.parameters.require("id"))
        guard id != Self.rootId else { throw APIError(.invalidArgument, "the root cannot be deleted") }
        let access = try await treeAccess(request, at: id, write: true)
        guard access.sharedFolder != id else { throw APIError(.forbidden, "a shared folder is deleted by its owner only") }
        if request.uri.queryParameters.get("recursive") == "true" {
            var total = PurgeResult(nodes: 0, bytes: 0)
            while true {
                let round = try await purgeTree(access.account.id, id, budget: Limits.purgeNodesMax)
                total = PurgeResult(nodes: total.nodes + round.nodes, bytes: total.bytes + round.bytes)
                if round.remaining != true { break }
            }
            guard total.nodes > 0 else { throw APIError(.notFound, "no node \(id)") }
            return try jsonResponse(total)
        }
        guard try await removeNode(access.account.id, id) != nil else { throw APIError(.notFound, "no node \(id)") }
        return Response(status: .noContent)
    }

    /// Removes one node for good: a file (its manifest, its bytes from the account's use, its
    /// shards best effort: what is missed is garbage for the collector), or an empty folder
    /// (with its shares and its unfinished key change); its rubbish bin entries go with it.
    /// With `unchanged`, only while that record keeps its revision (a purge's top node: a
    /// restore or a move of it stops the purge). The ciphertext bytes removed; nil when the
    /// node is gone already.
    func removeNode(_ accountId: String, _ id: String, unchanged: (key: String, revision: Int64)? = nil) async throws -> Int64? {
        for _ in 0..<5 {
            guard let (account, accountRevision) = try await read(AccountRecord.self, Keyspace.account(accountId)) else {
                throw APIError(.notFound, "no account \(accountId)")
            }
            if let unchanged, try await metadata.get(unchanged.key)?.modRevision != unchanged.revision {
                throw APIError(.conflict, "the node being removed was restored, moved or changed meanwhile: nothing more is removed")
            }
            guard let (node, revision) = try await read(TreeNodeInfo.self, treeKey(accountId, id)) else { return nil }
            if node.type == "folder" {
                guard try await metadata.list(prefix: Keyspace.children(accountId, id), after: nil, limit: 1).isEmpty else {
                    throw APIError(.conflict, "folder \(id) is not empty (what is in the rubbish bin counts: delete with recursive=true)")
                }
            }
            var mutations: [MetadataMutation] = [.delete(treeKey(accountId, id)), .delete(childKey(accountId, node.parent, id))]
            // A node in the bin gave its name up already (and another may hold it now).
            if let tag = node.nameTag, node.trashedAt == nil { mutations.append(.delete(nameKey(accountId, node.parent, tag))) }
            if let trashedAt = node.trashedAt {
                mutations += [.delete(Keyspace.binEntry(accountId, id)), .delete(Keyspace.binOrder(trashedAt, accountId, id))]
            }
            if node.type == "folder" {
                // Its unfinished key change, if any, goes with it.
                mutations.append(.delete(Keyspace.keyChange(owner: accountId, node: id)))
                // A deleted folder's shares go with it (recipients no longer list it).
                for entry in try await metadata.list(prefix: Keyspace.shares(owner: accountId) + id + "/", after: nil, limit: Limits.sharesPerFolderMax) {
                    let recipient = String(entry.key.split(separator: "/").last ?? "")
                    mutations += [.delete(entry.key), .delete(Keyspace.sharedWith(recipient, owner: accountId, node: id))]
                }
            }
            var conditions: [MetadataCondition] = [.revision(treeKey(accountId, id), revision)]
            if let unchanged, unchanged.key != treeKey(accountId, id) { conditions.append(.revision(unchanged.key, unchanged.revision)) }
            var updated = account
            if node.objectId != nil { updated.usedBytes = max(0, account.usedBytes - (node.length ?? 0)) }
            if node.type == "folder", node.trashedAt != nil { updated.foldersInBin = max(0, (account.foldersInBin ?? 0) - 1) }
            var manifest: ObjectManifest?
            if let objectId = node.objectId {
                manifest = try? await objects.manifest(objectId)
                mutations.append(.delete(ObjectStore.manifestKey(objectId)))
            }
            if updated.usedBytes != account.usedBytes || updated.foldersInBin != account.foldersInBin {
                conditions.append(.revision(Keyspace.account(accountId), accountRevision))
                mutations.append(.put(Keyspace.account(accountId), encode(updated)))
            }
            guard try await metadata.commit(if: conditions, then: mutations) != nil else { continue }
            if let manifest, let objectId = node.objectId {
                // The index after the commit, in transactions of their own (what is missed
                // only sends repair to a manifest that is gone).
                try? await metadata.applyInChunks(
                    Set(manifest.segments.flatMap { $0.shards.map(\.node) }).sorted().map { .delete(Keyspace.placement($0, objectId)) })
            }
            if let manifest { Task { [objects] in await objects.deleteShards(manifest) } }
            return node.length ?? 0
        }
        if let unchanged, try await metadata.get(unchanged.key)?.modRevision != unchanged.revision {
            throw APIError(.conflict, "the node being removed was restored, moved or changed meanwhile: nothing more is removed")
        }
        throw APIError(.conflict, "node \(id) kept changing; try again")
    }

    /// Removes a node and everything below it for good, deepest first, at most `budget`
    /// nodes (`remaining` says when more is left: call again). Every removal is conditioned
    /// on the top node's record being as it was at the start, so a restore (or a move) of it
    /// meanwhile stops the removal (`conflict`). A crash midway leaves a smaller tree, every
    /// node of it whole.
    func purgeTree(_ accountId: String, _ id: String, budget: Int) async throws -> PurgeResult {
        guard let top = try await metadata.get(treeKey(accountId, id)),
            let root = try? JSONDecoder().decode(TreeNodeInfo.self, from: Data(top.value))
        else { return PurgeResult(nodes: 0, bytes: 0) }
        let unchanged = (key: top.key, revision: top.modRevision)
        // Depth first: a folder is removed once its children are; a child is listed when its
        // folder is first met.
        var stack: [(id: String, folder: Bool, expanded: Bool)] = [(id, root.type == "folder", false)]
        var nodes = 0
        var bytes: Int64 = 0
        while let last = stack.last {
            if last.folder && !last.expanded {
                stack[stack.count - 1].expanded = true
                for child in try await children(accountId, last.id) { stack.append((child.id, child.type == "folder", false)) }
                continue
            }
            stack.removeLast()
            guard nodes < budget else { return PurgeResult(nodes: nodes, bytes: bytes, remaining: true) }
            guard let removed = try await removeNode(accountId, last.id, unchanged: unchanged) else { continue }
            nodes += 1
            bytes += removed
        }
        return PurgeResult(nodes: nodes, bytes: bytes)
    }

    // MARK: - Content

    /// Uploads: an error answered before the body is read drains the body first (up to
    /// `Limits.uploadDrainMax`), so that an HTTP/2 client blocked on flow control gets the
    /// answer instead of waiting forever.
    func upload(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let reading = BodyReading()
        do {
            return try await uploadBody(request, context, reading)
        } catch {
            // A body can be read once: one refused after reading began was drained where it
            // was refused, or was read whole (a name taken at the commit). One refused before
            // is drained (bounded) so that a client that sends before it reads gets the answer;
            // one declared larger than the drain limit (10 TB over the quota) is answered at
            // once, and its connection closed rather than read.
            guard !reading.started.load(ordering: .relaxed) else { throw error }
            if let declared = request.headers[.contentLength].flatMap(Int64.init), declared > Int64(Limits.uploadDrainMax) {
                throw CloseAfterAnswer(error)
            }
            var drained = 0
            do {
                for try await piece in request.body {
                    drained += piece.readableBytes
                    if drained > Limits.uploadDrainMax { break }
                }
            } catch {}
            throw error
        }
    }

    func uploadBody(_ request: Request, _ context: ServiceContext, _ reading: BodyReading) async throws -> Response {
        let id = try validNodeId(try context.parameters.require("id"))
        let headers = request.headers
        func header(_ name: String) -> String? { headers[HTTPField.Name(name)!] }
        let parent = header(ContentHeaders.parent) ?? Self.rootId
        // Into the caller's tree, or into a folder shared with it to write (the owner's quota).
        let access = try await treeAccess(request, at: parent, write: true)
        let (account, accountRevision) = (access.account, access.revision)
        let attributes = try blob(header(ContentHeaders.attributes), ContentHeaders.attributes, max: Limits.attributesSizeMax + 29)
        let wrappedKey = try blob(header(ContentHeaders.wrappedKey), ContentHeaders.wrappedKey, max: 61)
        let fileKey = try blob(header(ContentHeaders.fileKey), ContentHeaders.fileKey, max: 61)
        let tag = try validNameTag(header(ContentHeaders.nameTag))
        let generation = try header(ContentHeaders.parentKeyGeneration).map {
            guard let number = Int64($0) else { throw APIError(.invalidArgument, "\(ContentHeaders.parentKeyGeneration) is a number") }
            return try validGeneration(number)
        } ?? nil
        let folder = try await checkParent(account.id, parent, naming: true, generation: generation)
        // A taken node id is refused by the commit's transaction (ids are random: a clash is
        // a client's bug, not worth a round trip on every upload).
        let declared = headers[.contentLength].flatMap(Int64.init)
        if let declared, account.usedBytes + declared > account.quotaBytes {
            throw APIError(.quotaExceeded, "upload of \(ByteCount(declared)) exceeds the quota: \(ByteCount(account.usedBytes)) of \(ByteCount(account.quotaBytes)) used")
        }
        // The owner's excluded countries: refused before the body when the rest cannot hold
        // k + m shards, rather than placed there.
        let excluded = try Self.countries(account.excludedCountries ?? [], stored: true)
        if !excluded.isEmpty { try checkPlaceable(excluding: excluded) }
        let objectId = randomToken(16)
        let writer = objects.makeWriter(objectId: objectId, owner: account.id, excluding: excluded)
        let manifest: ObjectManifest
        do {
            reading.started.store(true, ordering: .relaxed)
            var body = request.body.makeAsyncIterator()
            while let piece = try await body.next() {
                do {
                    try await writer.append(piece)
                    if account.usedBytes + writer.length > account.quotaBytes {
                        throw APIError(.quotaExceeded, "upload exceeds the quota of \(ByteCount(account.quotaBytes))")
                    }
                } catch {
                    // Refused mid-body: read the rest (bounded) and drop it, so that the
                    // client gets the answer rather than a stalled upload.
                    var drained = 0
                    while drained <= Limits.uploadDrainMax, let rest = try? await body.next() { drained += rest.readableBytes }
                    throw error
                }
            }
            manifest = try await writer.finish()
            if let declared, declared != manifest.length {
                throw APIError(.invalidArgument, "body of \(manifest.length) bytes, content-length said \(declared)")
            }
            let node = TreeNodeInfo(
                id: id, parent: parent, type: "file", attributes: attributes, wrappedKey: wrappedKey, fileKey: fileKey,
                length: manifest.length, objectId: objectId, createdAt: now(), nameTag: tag, parentKeyGeneration: generation)
            try await commitUpload(account: (account, accountRevision), folder: folder, node: node, manifest: manifest, guard: try writer.commitGuard())
            logger.info("object committed", metadata: ["object.id": "\(objectId)", "object.bytes": "\(manifest.length)"])
            return try jsonResponse(node, status: .created)
        } catch {
            // Remove the shards already written, unless the commit did go through (an answer
            // lost on the way: the store retries, and the retry fails its conditions). When
            // in doubt, leave them to the collector.
            let partial = try? await writer.finish()
            var committed = true
            do { committed = try await metadata.get(ObjectStore.manifestKey(objectId)) != nil } catch {}
            if let partial, !committed { await objects.deleteShards(partial) }
            throw error
        }
    }

    /// Commits manifest, tree node and usage in one transaction, retrying when only the
    /// account record or the folder moved (another upload of the same account).
    ///
    /// - Parameters:
    ///   - known: the account record as read when the request was authenticated, tried
    ///     first: when nothing changed it meanwhile, the commit costs one round trip.
    ///   - folder: the folder as `checkParent` read it (nil for the root), for `childGuard`.
    ///   - guard: the upload's own conditions (`ObjectWriter.commitGuard`).
    func commitUpload(
        account known: (AccountRecord, Int64), folder: (TreeNodeInfo, Int64)?, node: TreeNodeInfo, manifest: ObjectManifest,
        guard upload: (conditions: [MetadataCondition], mutations: [MetadataMutation])
    ) async throws {
        let id = known.0.id
        // The placement index first, in transactions of its own (an object spread over more
        // nodes than one transaction holds): an entry without a manifest only sends repair
        // to a manifest that is not there, and the leader drops it after the grace.
        try await metadata.applyInChunks(objects.placementEntries(manifest.id, on: manifest.segments.flatMap { $0.shards.map(\.node) }))
        var current: (AccountRecord, Int64)? = known
        var parent = folder
        for attempt in 0..<Limits.treeCommitAttemptsMax {
            if attempt > 0 {
                current = try await read(AccountRecord.self, Keyspace.account(id))
                parent = try await checkParent(id, node.parent, naming: true, generation: node.parentKeyGeneration)
            }
            guard let (account, revision) = current else {
                throw APIError(.unauthenticated, "account is gone")
            }
            guard account.usedBytes + manifest.length <= account.quotaBytes else {
                throw APIError(.quotaExceeded, "upload of \(ByteCount(manifest.length)) exceeds the quota: \(ByteCount(account.usedBytes)) of \(ByteCount(account.quotaBytes)) used")
            }
            var updated = account
            updated.usedBytes += manifest.length
            var mutations: [MetadataMutation] = [
                .put(Keyspace.account(id), encode(updated)), .put(treeKey(id, node.id), encode(node)),
                .put(childKey(id, node.parent, node.id), encode(node)), .put(ObjectStore.manifestKey(manifest.id), encode(manifest)),
            ]
            if let tag = node.nameTag { mutations.append(.put(nameKey(id, node.parent, tag), Array(node.id.utf8))) }
            var conditions: [MetadataCondition] = [.revision(Keyspace.account(id), revision), .absent(treeKey(id, node.id))]
            if let tag = node.nameTag { conditions.append(.absent(nameKey(id, node.parent, tag))) }
            let (guardConditions, guardMutations) = childGuard(id, parent)
            if try await metadata.commit(if: conditions + guardConditions + upload.conditions, then: mutations + guardMutations + upload.mutations) != nil {
                return
            }
            if let intent = upload.conditions.first, case .revision(let key, let revision) = intent,
                try await metadata.get(key)?.modRevision != revision
            {
                throw APIError(.conflict, "upload outlived the collector's grace and its shards were collected; upload again")
            }
            // An answer lost on the way, then a retry that failed its conditions: committed.
            if let entry = try await metadata.get(ObjectStore.manifestKey(manifest.id)), entry.value == encode(manifest) { return }
            if let conflict = try await takenConflict(id, id: node.id, parent: node.parent, tag: node.nameTag) { throw conflict }
        }
        throw APIError(.conflict, "account \(id) kept changing; try again")
    }

    /// Streams a file's ciphertext, whole or a `Range` of it.
    /// A file's bytes (or a range of them), unless a file takedown in force here refuses it
    /// (`checked`: the caller read the takedowns already).
    /// The bytes count to the owner's transfer quota as they are written; a request that
    /// would take the owner past it is refused before any is (`transfer_quota_exceeded`).
    func content(of node: TreeNodeInfo, owner: AccountRecord, checked: Bool = false, _ request: Request) async throws -> Response {
        guard node.type == "file", let objectId = node.objectId else { throw APIError(.invalidArgument, "node \(node.id) is a folder") }
        if !checked { try await refuseFileTakenDown(owner: owner.id, node.id) }
        let manifest = try await objects.manifest(objectId)
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.acceptRanges] = "bytes"
        var status = HTTPResponse.Status.ok
        var range: Range<Int64> = 0..<manifest.length
        if let text = request.headers[.range] {
            range = try Self.parseRange(text, length: manifest.length)
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(manifest.length)"
        }
        headers[.contentLength] = String(range.count)
        let reservation = try await admitTransfer(owner, wanted: Int64(range.count))
        let objects = self.objects
        let wanted = range
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: wanted.count) { writer in
            defer { reservation.end() }
            try await objects.read(manifest, range: wanted) { bytes in
                var bytes = bytes
                while let piece = bytes.readSlice(length: min(bytes.readableBytes, Limits.networkWriteSizeMax)), piece.readableBytes > 0 {
                    try await writer.write(piece)
                    reservation.sent(Int64(piece.readableBytes))
                }
            }
            try await writer.finish(nil)
        })
    }

    /// One byte range of a file of `length` bytes, as RFC 9110 reads it: `bytes=a-b`, `bytes=a-`,
    /// `bytes=-n` (the last n). An end past the file is clamped to it; a range that selects no
    /// byte is 416 `range_not_satisfiable` with `Content-Range: bytes */LENGTH`; anything else
    /// (another unit, signs, spaces, an end before the start, several ranges) is 400 `bad_request`.
    public static func parseRange(_ text: String, length: Int64) throws -> Range<Int64> {
        let malformed = APIError(.badRequest, "malformed Range \(text): give one range, bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX")
        guard text.hasPrefix("bytes=") else { throw malformed }
        let spec = text.dropFirst(6)
        guard !spec.contains(",") else { throw APIError(.badRequest, "several ranges in one request are not served: ask for one at a time") }
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        func number(_ digits: Substring) -> Int64? {
            guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int64(digits)
        }
        var fields = HTTPFields()
        fields[.contentRange] = "bytes */\(length)"
        let unsatisfiable = APIError(.rangeNotSatisfiable, "Range \(text) selects no byte of a file of \(length) bytes", headers: fields)
        guard parts.count == 2 else { throw malformed }
        if parts[0].isEmpty {
            guard let suffix = number(parts[1]) else { throw malformed }
            guard suffix > 0, length > 0 else { throw unsatisfiable }
            return max(0, length - suffix)..<length
        }
        guard let first = number(parts[0]) else { throw malformed }
        let last: Int64
        if parts[1].isEmpty {
            last = Int64.max
        } else {
            guard let value = number(parts[1]) else { throw malformed }
            last = value
        }
        guard last >= first else { throw malformed }
        guard first < length else { throw unsatisfiable }
        return first..<(min(last, length - 1) + 1)
    }

    // MARK: - Links

    func createLink(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request)
        let body = try await decodeBody(CreateLinkRequest.self, request)
        guard let id = Base64URL.decode(body.linkId), id.count == 16 else { throw APIError(.invalidArgument, "a link id is base64url of 16 bytes") }
        let nodeId = try validNodeId(body.nodeId)
        guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(account.id, nodeId)) else { throw APIError(.notFound, "no node \(nodeId)") }
        guard try await !inBin(node, owner: account) else { throw APIError(.conflict, "node \(nodeId) is in the rubbish bin: restore it first") }
        try requireJSONObject(body.record, "link record", bytes: 4096)
        if let expiry = body.expiresAt, expiry <= now() { throw APIError(.invalidArgument, "expiresAt is in the past") }
        let info = LinkInfo(linkId: body.linkId, nodeId: nodeId, record: body.record, expiresAt: body.expiresAt, createdAt: now())
        let committed = try await metadata.commit(
            if: [.absent(Keyspace.link(body.linkId))],
            then: [.put(Keyspace.link(body.linkId), encode(StoredLink(owner: account.id, info: info))), .put(Keyspace.linkByOwner(account.id, body.linkId), [])])
        guard committed != nil else { throw APIError(.conflict, "link \(body.linkId) exists") }
        return try jsonResponse(info, status: .created)
    }

    func listLinks(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request)
        var links: [LinkInfo] = []
        for entry in try await metadata.list(prefix: Keyspace.linksByOwner(account.id), after: nil, limit: Limits.metadataListPageMax) {
            let id = String(entry.key.split(separator: "/").last!)
            if let (link, _) = try await read(StoredLink.self, Keyspace.link(id)) { links.append(link.info) }
        }
        return try jsonResponse(LinkList(links: links))
    }

    func revokeLink(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let (account, _) = try await authenticate(request)
        let id = try context.parameters.require("id")
        guard let (link, revision) = try await read(StoredLink.self, Keyspace.link(id)), link.owner == account.id else {
            throw APIError(.notFound, "no link \(id)")
        }
        _ = try await metadata.commit(if: [.revision(Keyspace.link(id), revision)], then: [.delete(Keyspace.link(id)), .delete(Keyspace.linkByOwner(account.id, id))])
        return Response(status: .noContent)
    }

    /// A link as anyone holding it sees it: no account, never the fragment.
    func publicLink(_ context: ServiceContext) async throws -> PublicLink {
        let (_, link) = try await resolveLink(context)
        return link
    }

    /// The link named in the path, its owner and its node; `not_found` when it was revoked,
    /// has expired or its node is gone (one answer for all three: a stranger learns no more).
    func resolveLink(_ context: ServiceContext) async throws -> (owner: AccountRecord, link: PublicLink) {
        let id = try context.parameters.require("id")
        guard let (link, _) = try await read(StoredLink.self, Keyspace.link(id)) else { throw APIError(.notFound, "no link \(id)") }
        if let expiry = link.info.expiresAt, expiry <= now() { throw APIError(.notFound, "link \(id) has expired") }
        try refuseTakenDown(link.takedowns ?? [])
        // A suspended account's links serve nothing (its record: one read, as a session's is).
        guard let (owner, _) = try await read(AccountRecord.self, Keyspace.account(link.owner)) else { throw APIError(.notFound, "no link \(id)") }
        if owner.suspension != nil { throw APIError(.accountSuspended, "the account that made this link is suspended by the operator") }
        guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(link.owner, link.info.nodeId)) else {
            throw APIError(.notFound, "the linked node is gone")
        }
        guard try await !inBin(node, owner: owner) else { throw APIError(.notFound, "the linked node is in its owner's rubbish bin") }
        if node.type == "file" { try await refuseFileTakenDown(owner: link.owner, node.id) }
        return (owner, PublicLink(link: link.info, node: node))
    }

    /// A node a folder link reaches: the linked folder itself or a node below it. Walking up
    /// from the node must meet the linked folder before the root (bounded by
    /// `Limits.treeDepthMax`); anything else is `not_found`, as for a node that does not exist.
    func node(_ nodeId: String, under link: PublicLink, owner: String) async throws -> TreeNodeInfo {
        let id = try validNodeId(nodeId)
        guard id != link.node.id else { return link.node }
        guard link.node.type == "folder", let (node, _) = try await read(TreeNodeInfo.self, treeKey(owner, id)), node.trashedAt == nil else {
            throw APIError(.notFound, "no node \(id) under this link")
        }
        var current = node.parent
        for _ in 0..<Limits.treeDepthMax {
            if current == link.node.id { return node }
            // Below a folder in the rubbish bin: not reached by the link.
            guard current != Self.rootId, let (parent, _) = try await read(TreeNodeInfo.self, treeKey(owner, current)), parent.trashedAt == nil else { break }
            current = parent.parent
        }
        throw APIError(.notFound, "no node \(id) under this link")
    }

    /// `GET /v1/l/:id/nodes?parent=P`: the children of a folder a folder link reaches (the
    /// linked folder when `parent` is absent), as `GET /v1/nodes` lists them for an owner.
    func listLinkChildren(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let owner = try await resolveLink(context)
        let parentId = request.uri.queryParameters.get("parent").map { String($0) } ?? owner.link.node.id
        let parent = try await node(parentId, under: owner.link, owner: owner.owner.id)
        guard parent.type == "folder" else { throw APIError(.invalidArgument, "node \(parent.id) is not a folder") }
        return try jsonResponse(NodeList(nodes: try await children(owner.owner.id, parent.id).filter { $0.trashedAt == nil }))
    }
}

extension ObjectStore {
    /// Deletes an object's shards, best effort (what is missed is garbage for the collector).
    func deleteShards(_ manifest: ObjectManifest) async {
        for segment in manifest.segments {
            for shard in segment.shards {
                guard let member = topology.member(shard.node) else { continue }
                try? await nodes.delete(base: member.url, key: segment.shardKey(object: manifest.id, shard: shard.index))
            }
        }
    }
}
