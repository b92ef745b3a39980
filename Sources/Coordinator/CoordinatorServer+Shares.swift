import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird
import Metadata

/// Sharing folders with other accounts.
///
/// The server relays what clients seal and sign (public keys, the folder key sealed to the
/// recipient) and enforces who may touch what: a recipient reaches the owner's nodes below a
/// folder shared with it, reads them, and with a write share adds, renames and deletes there.
/// It can never open a sealed key, and a key it substitutes is caught by the clients' pins.
extension CoordinatorServer {
    struct ShareRecord: Codable {
        var info: ShareInfo
    }

    /// `PUT /v1/account/keys`: the caller publishes its public keys, once (the same keys again
    /// is a no-op; other keys are a conflict, so a stolen session cannot swap them quietly).
    func publishKeys(_ request: Request) async throws -> Response {
        let body = try await decodeBody(PublicKeys.self, request, limit: 4096)
        _ = try decodeBinary(body.signingKey, "signingKey", size: 32...32)
        _ = try decodeBinary(body.agreementKey, "agreementKey", size: 32...32)
        for _ in 0..<Limits.treeCommitAttemptsMax {
            // (A suspended account signs in, and its client publishes its keys as it does.)
            let (account, revision) = try await authenticate(request, allowingSuspended: true)
            if let keys = account.keys {
                guard keys == body else { throw APIError(.conflict, "account \(account.username) has other public keys already") }
                return Response(status: .noContent)
            }
            var updated = account
            updated.keys = body
            if try await metadata.commit(if: [.revision(Keyspace.account(account.id), revision)], then: [.put(Keyspace.account(account.id), encode(updated))]) != nil {
                return Response(status: .noContent)
            }
        }
        throw APIError(.conflict, "account kept changing; try again")
    }

    /// The account of a username, or `not_found`.
    func account(named name: String) async throws -> (AccountRecord, Int64) {
        let username = try validUsername(name)
        guard let id = try await metadata.get(Keyspace.username(username)).map({ String(decoding: $0.value, as: UTF8.self) }),
            let found = try await read(AccountRecord.self, Keyspace.account(id))
        else { throw APIError(.notFound, "no user \(username)") }
        return found
    }

    /// `GET /v1/users/{username}/keys` (signed-in callers only).
    func userKeys(_ request: Request, _ context: ServiceContext) async throws -> Response {
        _ = try await authenticate(request)
        let (account, _) = try await account(named: try context.parameters.require("username"))
        guard let keys = account.keys else { throw APIError(.notFound, "\(account.username) has not published public keys yet (they appear when they next sign in)") }
        return try jsonResponse(UserKeys(username: account.username, keys: keys))
    }

    /// `POST /v1/shares`: shares one of the caller's folders (again: replaces the share).
    func createShare(_ request: Request) async throws -> Response {
        let (owner, _) = try await authenticate(request)
        let body = try await decodeBody(CreateShareRequest.self, request, limit: 4096)
        let nodeId = try validNodeId(body.nodeId)
        try checkSealed(body.sealed)
        guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(owner.id, nodeId)), node.type == "folder" else {
            throw APIError(.notFound, "no folder \(nodeId)")
        }
        guard try await !inBin(node, owner: owner) else { throw APIError(.conflict, "folder \(nodeId) is in the rubbish bin: restore it first") }
        let (recipient, _) = try await account(named: body.recipient)
        guard recipient.id != owner.id else { throw APIError(.invalidArgument, "a folder is shared with another account, not with its owner") }
        let info = ShareInfo(
            ownerId: owner.id, owner: owner.username, nodeId: nodeId, recipientId: recipient.id, recipient: recipient.username, write: body.write,
            sealed: body.sealed, createdAt: now())
        let key = Keyspace.share(owner: owner.id, node: nodeId, recipient: recipient.id)
        let existing = try await metadata.list(prefix: Keyspace.shares(owner: owner.id) + nodeId + "/", after: nil, limit: Limits.sharesPerFolderMax + 1)
        if existing.count >= Limits.sharesPerFolderMax, !existing.contains(where: { $0.key == key }) {
            throw APIError(.limitExceeded, "folder \(nodeId) is shared with \(existing.count) accounts already, the most one folder may be")
        }
        _ = try await metadata.commit(
            if: [], then: [.put(key, encode(ShareRecord(info: info))), .put(Keyspace.sharedWith(recipient.id, owner: owner.id, node: nodeId), Array(key.utf8))])
        logger.info("folder shared", metadata: ["account.id": "\(owner.id)", "share.recipient": "\(recipient.id)", "share.write": "\(body.write)"])
        return try jsonResponse(info, status: .created)
    }

    /// A sealed share's fields have their sizes (the server cannot check more: it holds no key).
    func checkSealed(_ sealed: SealedShareText) throws {
        _ = try decodeBinary(sealed.encapsulatedKey, "encapsulatedKey", size: 32...32)
        _ = try decodeBinary(sealed.ciphertext, "ciphertext", size: 48...48)
        _ = try decodeBinary(sealed.signature, "signature", size: 64...64)
    }

    /// `GET /v1/shares`: what the caller shared, and what was shared with it (with each
    /// shared folder's record, whose attributes the recipient opens with the sealed key).
    func listShares(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request)
        var outgoing: [ShareInfo] = []
        for entry in try await metadata.list(prefix: Keyspace.shares(owner: account.id), after: nil, limit: Limits.metadataListPageMax) {
            if let record = try? JSONDecoder().decode(ShareRecord.self, from: Data(entry.value)) { outgoing.append(record.info) }
        }
        var incoming: [ShareInfo] = []
        for entry in try await metadata.list(prefix: Keyspace.sharedWith(account.id), after: nil, limit: Limits.metadataListPageMax) {
            guard var (record, _) = try await read(ShareRecord.self, String(decoding: entry.value, as: UTF8.self)) else { continue }
            // A folder its owner deleted leaves a share with nothing to show; one in its owner's
            // rubbish bin is shared with nobody until restored.
            guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(record.info.ownerId, record.info.nodeId)) else { continue }
            if node.trashedAt != nil { continue }
            if let (owner, _) = try await read(AccountRecord.self, Keyspace.account(record.info.ownerId)), try await inBin(node, owner: owner) { continue }
            record.info.node = node
            incoming.append(record.info)
        }
        return try jsonResponse(ShareList(outgoing: outgoing, incoming: incoming))
    }

    /// `DELETE /v1/shares/{node}/{recipient}`: the owner ends a share; the recipient's next
    /// request into the folder is refused. The same transaction lists the folder's key change
    /// (the former recipient had the key), unconditionally, so that no writer keeping the
    /// folder busy can hold the revocation back; then the folder and every folder below it are
    /// marked due: none takes new names until its key changed (`key_changing`), so nothing
    /// added after the share ended is under a key the former recipient had, even if the
    /// owner's client stops before it changed them (`GET /v1/rekeys` lists what is left).
    func deleteShare(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let (owner, _) = try await authenticate(request)
        let nodeId = try validNodeId(try context.parameters.require("node"))
        let (recipient, _) = try await account(named: try context.parameters.require("recipient"))
        let key = Keyspace.share(owner: owner.id, node: nodeId, recipient: recipient.id)
        guard try await metadata.get(key) != nil else { throw APIError(.notFound, "folder \(nodeId) is not shared with \(recipient.username)") }
        _ = try await metadata.commit(
            if: [],
            then: [.delete(key), .delete(Keyspace.sharedWith(recipient.id, owner: owner.id, node: nodeId)), .put(Keyspace.keyChange(owner: owner.id, node: nodeId), [])])
        try await markKeyChangeDue(owner.id, nodeId)
        try await markKeyChangesDue(owner.id, below: nodeId)
        return Response(status: .noContent)
    }

    /// Marks one folder's key change due: listed first (what the owner's client works from),
    /// then its record flagged `keyPending` so that it takes no new names, tried again while
    /// the record keeps changing (writers into the folder rewrite it). A folder whose change
    /// has started is flagged too: its new key was wrapped under, or sealed to, what the
    /// former recipient could open, so it changes again once this change is finished.
    func markKeyChangeDue(_ owner: String, _ id: String) async throws {
        _ = try await metadata.commit(if: [], then: [.put(Keyspace.keyChange(owner: owner, node: id), [])])
        for _ in 0..<Limits.keyChangeMarkAttemptsMax {
            guard let (folder, revision) = try await read(TreeNodeInfo.self, treeKey(owner, id)), folder.type == "folder", folder.keyPending != true else {
                return
            }
            var due = folder
            due.keyPending = true
            if try await metadata.commit(
                if: [.revision(treeKey(owner, id), revision)], then: [.put(treeKey(owner, id), encode(due)), .put(childKey(owner, folder.parent, id), encode(due))]
            ) != nil { return }
        }
        // Still listed: the owner's client changes its key all the same; only the refusal of
        // new names waits for that.
        logger.warning("a folder's key change is listed but its record kept changing", metadata: ["node.id": "\(id)"])
    }

    /// Marks the key change of every folder below `top` due (`markKeyChangeDue`), depth first.
    func markKeyChangesDue(_ owner: String, below top: String) async throws {
        var queue = [top]
        while let folder = queue.popLast() {
            for child in try await children(owner, folder) where child.type == "folder" {
                queue.append(child.id)
                try await markKeyChangeDue(owner, child.id)
            }
        }
    }

    // MARK: - Key rotation

    /// `POST /v1/nodes/{id}/rekey`: the owner gives one of its folders a new key (after a
    /// share ended). One transaction: the folder's record (new attributes and wrapped key, the
    /// previous key wrapped under the new one), its copy in its parent's index, and the sealed
    /// key of every share of the folder, which must all be given.
    func rekeyFolder(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let (account, _) = try await authenticate(request)
        let id = try validNodeId(try context.parameters.require("id"))
        let body = try await decodeBody(RekeyFolderRequest.self, request, limit: 64 << 10)
        let generation = try validGeneration(body.parentKeyGeneration)
        let attributes = try blob(body.attributes, "attributes", max: Limits.attributesSizeMax + 29)
        let wrappedKey = try blob(body.wrappedKey, "wrappedKey", max: 61)
        let previousKey = try blob(body.previousKey, "previousKey", max: 61)
        var sealedFor: Set<String> = []
        var recipients: [(id: String, username: String, sealed: SealedShareText)] = []
        for share in body.shares {
            try checkSealed(share.sealed)
            let (recipient, _) = try await self.account(named: share.recipient)
            guard sealedFor.insert(recipient.id).inserted else { throw APIError(.invalidArgument, "\(recipient.username) is named twice") }
            recipients.append((recipient.id, recipient.username, share.sealed))
        }
        // Tried again while only the records' revisions moved (writers into the folder or its
        // parent rewrite them); a change of key, parent or shares is the client's to read again.
        for _ in 0..<Limits.treeCommitAttemptsMax {
            guard let (folder, revision) = try await read(TreeNodeInfo.self, treeKey(account.id, id)), folder.type == "folder" else {
                throw APIError(.notFound, "no folder \(id)")
            }
            // A second new key before the first is everywhere would strand the children that
            // carry the first: the client finishes the running change instead.
            guard folder.previousKey == nil else { throw APIError(.keyChanging, "folder \(id) is already taking a new key: finish that first") }
            // The new key is wrapped under the parent's key as the client read it (bound to the
            // parent's id): the same parent, at the same generation, and not itself due (its
            // key is known to whoever made it due: it changes first).
            guard folder.parent == body.parent else {
                throw APIError(.keyChanged, "folder \(id) is now in \(folder.parent), not \(body.parent): read it again")
            }
            var conditions: [MetadataCondition] = [.revision(treeKey(account.id, id), revision)]
            if folder.parent != Self.rootId {
                guard let (parent, parentRevision) = try await read(TreeNodeInfo.self, treeKey(account.id, folder.parent)) else {
                    throw APIError(.notFound, "no folder \(folder.parent)")
                }
                guard parent.keyPending != true else {
                    throw APIError(.keyChanging, "folder \(folder.parent) must get a new key first: change it, then folder \(id)")
                }
                guard (parent.keyGeneration ?? 0) == (generation ?? 0) else {
                    throw APIError(.keyChanged, "folder \(folder.parent) has key generation \(parent.keyGeneration ?? 0), the request used \(generation ?? 0): read it again")
                }
                conditions.append(.revision(treeKey(account.id, folder.parent), parentRevision))
            } else if generation != nil {
                throw APIError(.keyChanged, "the root's key generation is 0")
            }
            var updated = TreeNodeInfo(
                id: id, parent: folder.parent, type: "folder", attributes: attributes, wrappedKey: wrappedKey, fileKey: nil, length: nil, objectId: nil,
                createdAt: folder.createdAt, nameTag: folder.nameTag, previousKey: previousKey, keyGeneration: (folder.keyGeneration ?? 0) + 1,
                parentKeyGeneration: generation, keyPending: nil)
            updated.trashedAt = folder.trashedAt
            var mutations: [MetadataMutation] = [
                .put(treeKey(account.id, id), encode(updated)), .put(childKey(account.id, folder.parent, id), encode(updated)),
                .put(Keyspace.keyChange(owner: account.id, node: id), []),
            ]
            let existing = try await metadata.list(prefix: Keyspace.shares(owner: account.id) + id + "/", after: nil, limit: Limits.metadataListPageMax)
            guard existing.count == recipients.count, existing.count <= Limits.sharesPerFolderMax else {
                throw APIError(.conflict, "folder \(id) has \(existing.count) shares and the request seals the key for \(recipients.count); list them again")
            }
            for recipient in recipients {
                let key = Keyspace.share(owner: account.id, node: id, recipient: recipient.id)
                guard let (record, shareRevision) = try await read(ShareRecord.self, key) else {
                    throw APIError(.conflict, "folder \(id) is not shared with \(recipient.username); list the shares again")
                }
                let info = record.info
                let sealed = ShareInfo(
                    ownerId: info.ownerId, owner: info.owner, nodeId: info.nodeId, recipientId: info.recipientId, recipient: info.recipient,
                    write: info.write, sealed: recipient.sealed, createdAt: info.createdAt)
                conditions.append(.revision(key, shareRevision))
                mutations.append(.put(key, encode(ShareRecord(info: sealed))))
            }
            if try await metadata.commit(if: conditions, then: mutations) != nil { return try jsonResponse(updated) }
        }
        throw APIError(.conflict, "folder \(id) or its shares kept changing; try again")
    }

    /// `POST /v1/nodes/{id}/rekey/children`: children of a folder that is taking a new key,
    /// re-wrapped under it with their name tags under it; one transaction per request.
    func rekeyChildren(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let (account, _) = try await authenticate(request)
        let id = try validNodeId(try context.parameters.require("id"))
        let body = try await decodeBody(RekeyChildrenRequest.self, request, limit: 64 << 10)
        guard body.children.count <= Limits.rekeyChildrenPerRequestMax else {
            throw APIError(.limitExceeded, "at most \(Limits.rekeyChildrenPerRequestMax) children a request, got \(body.children.count)")
        }
        guard let (folder, _) = try await read(TreeNodeInfo.self, treeKey(account.id, id)), folder.type == "folder", folder.previousKey != nil else {
            throw APIError(.keyChanged, "folder \(id) is not taking a new key (POST /v1/nodes/\(id)/rekey first)")
        }
        // Wrapped under the key of the generation the client read: another client may have
        // finished that change and started the next meanwhile.
        guard (folder.keyGeneration ?? 0) == body.keyGeneration else {
            throw APIError(.keyChanged, "folder \(id) has key generation \(folder.keyGeneration ?? 0), the request used \(body.keyGeneration): read it again")
        }
        var conditions: [MetadataCondition] = []
        var mutations: [MetadataMutation] = []
        guard Set(body.children.map(\.id)).count == body.children.count else { throw APIError(.invalidArgument, "a child is named twice") }
        for change in body.children {
            let childId = try validNodeId(change.id)
            guard let (child, revision) = try await read(TreeNodeInfo.self, treeKey(account.id, childId)), child.parent == id else {
                throw APIError(.notFound, "no node \(childId) in folder \(id)")
            }
            // Re-wrapped from what the client read: a child moved or re-wrapped since is read again.
            guard child.wrappedKey == change.wrappedKeyWas else {
                throw APIError(.keyChanged, "node \(childId) changed since it was read: list folder \(id) again")
            }
            // Every child keeps a name tag: without one its name would no longer be unique.
            let tag: String? = try validNameTag(change.nameTag)
            // A sub-folder's key was known to whoever could open this folder: it must change
            // too (again, if its own change has started: that new key was wrapped under this
            // folder's previous key), and takes no new names until it has (listed).
            let due = child.type == "folder"
            var updated = TreeNodeInfo(
                id: childId, parent: id, type: child.type, attributes: child.attributes, wrappedKey: try blob(change.wrappedKey, "wrappedKey", max: 61),
                fileKey: child.fileKey, length: child.length, objectId: child.objectId, createdAt: child.createdAt, nameTag: tag,
                previousKey: child.previousKey, keyGeneration: child.keyGeneration, parentKeyGeneration: folder.keyGeneration,
                keyPending: due ? true : child.keyPending)
            updated.trashedAt = child.trashedAt
            conditions.append(.revision(treeKey(account.id, childId), revision))
            mutations += [.put(treeKey(account.id, childId), encode(updated)), .put(childKey(account.id, id, childId), encode(updated))]
            if child.type == "folder" { mutations.append(.put(Keyspace.keyChange(owner: account.id, node: childId), [])) }
            // A child in the rubbish bin holds no name in the folder: its new tag is kept for
            // its restore.
            if let old = child.nameTag, old != tag, child.trashedAt == nil { mutations.append(.delete(nameKey(account.id, id, old))) }
            if let tag, tag != child.nameTag, child.trashedAt == nil {
                conditions.append(.absent(nameKey(account.id, id, tag)))
                mutations.append(.put(nameKey(account.id, id, tag), Array(childId.utf8)))
            }
        }
        guard try await metadata.commit(if: conditions, then: mutations) != nil else {
            throw APIError(.conflict, "children of folder \(id) changed meanwhile, or two have one name; list them again")
        }
        return Response(status: .noContent)
    }

    /// `DELETE /v1/nodes/{id}/rekey`: the folder's children all carry the new key; the
    /// previous one is dropped and the folder takes new names again. Refused
    /// (`key_changing`) while a child is still under the previous key, or when the change was
    /// never started. A folder with no change under way answers 204 (a finish sent twice).
    func finishRekey(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let (account, _) = try await authenticate(request)
        let id = try validNodeId(try context.parameters.require("id"))
        guard let (folder, revision) = try await read(TreeNodeInfo.self, treeKey(account.id, id)), folder.type == "folder" else {
            throw APIError(.notFound, "no folder \(id)")
        }
        let listed = Keyspace.keyChange(owner: account.id, node: id)
        guard folder.previousKey != nil else {
            // Nothing under way: a due change starts first; else a finish sent twice.
            let isListed = try await metadata.get(listed) != nil
            if folder.keyPending == true || isListed {
                throw APIError(.keyChanging, "folder \(id) must get a new key first (POST /v1/nodes/\(id)/rekey)")
            }
            return Response(status: .noContent)
        }
        // Every child under the new key (no child comes in meanwhile: the folder takes no
        // names while its key changes).
        let behind = try await children(account.id, id).filter { ($0.parentKeyGeneration ?? 0) != (folder.keyGeneration ?? 0) }.count
        guard behind == 0 else {
            throw APIError(.keyChanging, "\(behind) children of folder \(id) are still under its previous key: re-wrap them first (POST /v1/nodes/\(id)/rekey/children)")
        }
        var updated = folder
        updated.previousKey = nil
        var mutations: [MetadataMutation] = [.put(treeKey(account.id, id), encode(updated)), .put(childKey(account.id, folder.parent, id), encode(updated))]
        // Made due again while it changed (another share ended): it stays listed, to change again.
        if folder.keyPending != true { mutations.append(.delete(listed)) }
        guard try await metadata.commit(if: [.revision(treeKey(account.id, id), revision)], then: mutations) != nil else {
            throw APIError(.conflict, "folder \(id) changed meanwhile; try again")
        }
        return Response(status: .noContent)
    }

    /// `GET /v1/rekeys[?after=ID]`: the caller's folders whose key change is unfinished
    /// (started, or due because a share above them ended), a page at a time in id order.
    func listKeyChanges(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request)
        let limit = Limits.metadataListPageMax
        let prefix = Keyspace.keyChanges(owner: account.id)
        let after = try request.uri.queryParameters.get("after").map { prefix + (try validNodeId(String($0))) }
        let page = try await metadata.list(prefix: prefix, after: after, limit: limit)
        var nodes: [String] = []
        for entry in page {
            let id = String(entry.key.dropFirst(prefix.count))
            // An entry whose folder is gone (deleted between two steps) is dropped, not listed:
            // a client could never finish it.
            guard try await metadata.get(treeKey(account.id, id)) != nil else {
                _ = try await metadata.commit(if: [.absent(treeKey(account.id, id))], then: [.delete(entry.key)])
                continue
            }
            nodes.append(id)
        }
        return try jsonResponse(PendingKeyChanges(nodes: nodes, more: page.count == limit))
    }

    /// Whose tree a request acts on, and as what.
    struct TreeAccess {
        /// The tree's owner: the caller, or the account that shared a folder with it.
        var account: AccountRecord
        var revision: Int64
        /// The shared folder the request reaches through (nil for the caller's own tree).
        var sharedFolder: String?
    }

    /// The caller's own tree, or with `?owner=ACCOUNT` the owner's tree where a folder shared
    /// with the caller holds `node` (the folder itself or below it): read, or write when
    /// `write`. Anything else is `not_found`, as for a node that does not exist.
    func treeAccess(_ request: Request, at node: String, write: Bool) async throws -> TreeAccess {
        let (caller, revision) = try await authenticate(request)
        guard let ownerId = request.uri.queryParameters.get("owner").map({ String($0) }), ownerId != caller.id else {
            return TreeAccess(account: caller, revision: revision)
        }
        var current = node
        for _ in 0..<Limits.treeDepthMax where current != Self.rootId {
            if let (share, _) = try await read(ShareRecord.self, Keyspace.share(owner: ownerId, node: current, recipient: caller.id)) {
                guard !write || share.info.write else {
                    throw APIError(.forbidden, "\(share.info.owner) shared this folder with you read-only")
                }
                guard let (owner, ownerRevision) = try await read(AccountRecord.self, Keyspace.account(ownerId)) else { break }
                // A shared folder in its owner's rubbish bin, or below a folder there, is shared
                // no more until restored.
                guard let (folder, _) = try await read(TreeNodeInfo.self, treeKey(ownerId, current)), try await !inBin(folder, owner: owner) else { break }
                // A suspended owner's folders are closed to those it shared them with too.
                if owner.suspension != nil { throw APIError(.accountSuspended, "\(owner.username), who shared this folder, is suspended by the operator") }
                return TreeAccess(account: owner, revision: ownerRevision, sharedFolder: current)
            }
            guard let (parent, _) = try await read(TreeNodeInfo.self, treeKey(ownerId, current)), parent.trashedAt == nil else { break }
            current = parent.parent
        }
        throw APIError(.notFound, "no node \(node) shared with you")
    }
}
