import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import Hummingbird
import Metadata

/// The rubbish bin (Docs/policy.md, "Rubbish bin"): `coffre rm` puts a node there instead of
/// deleting it. A node in the bin stays where it was in the tree, marked (`trashedAt`), with
/// its name given up in its folder: listings, links and shares do not show it or anything
/// below it, and its files still count to the storage quota. It comes back with a restore, or
/// goes for good when its owner empties the bin or the leader purges it after
/// `bin_retention_seconds`. No key changes hands: the client unwraps a bin entry's key
/// through its ancestors, as it would where the node was.
extension CoordinatorServer {
    var binRetentionMilliseconds: Int64 { Int64(configuration.binRetentionSeconds) * 1000 }

    /// Whether `node` (read already) or a folder above it is in its owner's bin. The folders
    /// above are read only while the owner has a folder in the bin (`foldersInBin`); otherwise
    /// the node's own mark says, with no read more.
    func inBin(_ node: TreeNodeInfo, owner: AccountRecord) async throws -> Bool {
        if node.trashedAt != nil { return true }
        guard (owner.foldersInBin ?? 0) > 0 else { return false }
        var current = node.parent
        for _ in 0..<Limits.treeDepthMax where current != Self.rootId {
            guard let (folder, _) = try await read(TreeNodeInfo.self, treeKey(owner.id, current)) else { return false }
            if folder.trashedAt != nil { return true }
            current = folder.parent
        }
        return false
    }

    /// `POST /v1/nodes/{id}/trash`: into the owner's bin (a writer of a shared folder puts it
    /// into its owner's bin).
    func trashNode(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let id = try validNodeId(try context.parameters.require("id"))
        guard id != Self.rootId else { throw APIError(.invalidArgument, "the root cannot go to the rubbish bin") }
        for _ in 0..<Limits.treeCommitAttemptsMax {
            let access = try await treeAccess(request, at: id, write: true)
            guard access.sharedFolder != id else { throw APIError(.forbidden, "a shared folder is deleted by its owner only") }
            let account = access.account.id
            guard let (node, revision) = try await read(TreeNodeInfo.self, treeKey(account, id)) else { throw APIError(.notFound, "no node \(id)") }
            guard node.trashedAt == nil else { throw APIError(.conflict, "node \(id) is in the rubbish bin already") }
            var trashed = node
            let at = now()
            trashed.trashedAt = at
            var mutations: [MetadataMutation] = [
                .put(treeKey(account, id), encode(trashed)), .put(childKey(account, node.parent, id), encode(trashed)),
                .put(Keyspace.binEntry(account, id), Array(String(at).utf8)), .put(Keyspace.binOrder(at, account, id), []),
            ]
            var conditions: [MetadataCondition] = [.revision(treeKey(account, id), revision)]
            if let tag = node.nameTag { mutations.append(.delete(nameKey(account, node.parent, tag))) }
            if node.type == "folder" {
                // Links and shares below it now check the folders above them.
                var owner = access.account
                owner.foldersInBin = (owner.foldersInBin ?? 0) + 1
                conditions.append(.revision(Keyspace.account(account), access.revision))
                mutations.append(.put(Keyspace.account(account), encode(owner)))
            }
            if try await metadata.commit(if: conditions, then: mutations) != nil {
                return try jsonResponse(BinEntry(node: trashed, ancestors: [], purgeAt: at + binRetentionMilliseconds))
            }
        }
        throw APIError(.conflict, "node \(id) kept changing; try again")
    }

    /// `POST /v1/nodes/{id}/restore`: back where it was, under its name. 409 `name_taken` when
    /// its folder holds another node of that name now; 409 `conflict` when its folder is in
    /// the bin too (restore that first).
    func restoreNode(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let id = try validNodeId(try context.parameters.require("id"))
        for _ in 0..<Limits.treeCommitAttemptsMax {
            let access = try await treeAccess(request, at: id, write: true)
            let account = access.account.id
            guard let (node, revision) = try await read(TreeNodeInfo.self, treeKey(account, id)) else { throw APIError(.notFound, "no node \(id)") }
            guard let trashedAt = node.trashedAt else { throw APIError(.conflict, "node \(id) is not in the rubbish bin") }
            // One being purged (its entry claimed by the leader or `bin empty`) stays gone.
            guard let entry = try await metadata.get(Keyspace.binEntry(account, id)) else {
                throw APIError(.conflict, "node \(id) is being deleted for good (its time in the rubbish bin is up)")
            }
            // Its name tag is under its folder's key: not while that key changes, and only in
            // the generation it was made in (`key_changed` otherwise: the key change re-tags it).
            let parent = try await checkParent(account, node.parent, naming: true, generation: node.parentKeyGeneration)
            if let (folder, _) = parent, try await inBin(folder, owner: access.account) {
                throw APIError(.conflict, "a folder above it is in the rubbish bin too: restore that first")
            }
            var restored = node
            restored.trashedAt = nil
            var conditions: [MetadataCondition] = [.revision(treeKey(account, id), revision), .revision(entry.key, entry.modRevision)]
            var mutations: [MetadataMutation] = [
                .put(treeKey(account, id), encode(restored)), .put(childKey(account, node.parent, id), encode(restored)),
                .delete(Keyspace.binEntry(account, id)), .delete(Keyspace.binOrder(trashedAt, account, id)),
            ]
            if node.type == "folder" {
                var owner = access.account
                owner.foldersInBin = max(0, (owner.foldersInBin ?? 0) - 1)
                conditions.append(.revision(Keyspace.account(account), access.revision))
                mutations.append(.put(Keyspace.account(account), encode(owner)))
            }
            if let tag = node.nameTag {
                conditions.append(.absent(nameKey(account, node.parent, tag)))
                mutations.append(.put(nameKey(account, node.parent, tag), Array(id.utf8)))
            }
            let (guardConditions, guardMutations) = childGuard(account, parent)
            if try await metadata.commit(if: conditions + guardConditions, then: mutations + guardMutations) != nil {
                return try jsonResponse(restored)
            }
            if let tag = node.nameTag, try await metadata.get(nameKey(account, node.parent, tag)) != nil {
                throw APIError(.nameTaken, "its folder holds another node of that name now: rename or remove that one, then restore")
            }
        }
        throw APIError(.conflict, "node \(id) kept changing; try again")
    }

    /// `GET /v1/bin?after=NODE`: the caller's bin, a page at a time, each entry with the
    /// folders above it (read once per page).
    func listBin(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request)
        let after = try request.uri.queryParameters.get("after").map { Keyspace.binEntry(account.id, try validNodeId(String($0))) }
        let page = try await metadata.list(prefix: Keyspace.bin(account.id), after: after, limit: Limits.binPageMax)
        var folders: [String: TreeNodeInfo] = [:]
        var entries: [BinEntry] = []
        for entry in page {
            let id = String(entry.key.dropFirst(Keyspace.bin(account.id).utf8.count))
            guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(account.id, id)), let trashedAt = node.trashedAt else { continue }
            var ancestors: [TreeNodeInfo] = []
            var current = node.parent
            for _ in 0..<Limits.treeDepthMax where current != Self.rootId {
                if folders[current] == nil, let (folder, _) = try await read(TreeNodeInfo.self, treeKey(account.id, current)) { folders[current] = folder }
                guard let folder = folders[current] else { break }
                ancestors.append(folder)
                current = folder.parent
            }
            entries.append(BinEntry(node: node, ancestors: ancestors.reversed(), purgeAt: trashedAt + binRetentionMilliseconds))
        }
        let next = page.count == Limits.binPageMax ? page.last.map { String($0.key.dropFirst(Keyspace.bin(account.id).utf8.count)) } : nil
        return try jsonResponse(BinList(entries: entries, next: next))
    }

    /// `DELETE /v1/bin`: everything in the caller's bin, for good. An entry that cannot be
    /// purged now does not stop the others; the answer is then `conflict`, naming how many.
    func emptyBin(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request)
        var total = PurgeResult(nodes: 0, bytes: 0)
        var failures: [String] = []
        var after: String?
        repeat {
            let page = try await metadata.list(prefix: Keyspace.bin(account.id), after: after, limit: Limits.binPageMax)
            for entry in page {
                let node = String(entry.key.dropFirst(Keyspace.bin(account.id).utf8.count))
                do {
                    let removed = try await purgeEntry(account.id, node, trashedAt: nil)
                    total = PurgeResult(nodes: total.nodes + removed.nodes, bytes: total.bytes + removed.bytes)
                } catch {
                    failures.append("\(node): \(error)")
                }
            }
            after = page.count == Limits.binPageMax ? page.last?.key : nil
        } while after != nil
        logger.info("rubbish bin emptied", metadata: ["account.id": "\(account.id)", "bin.nodes": "\(total.nodes)", "bin.failures": "\(failures.count)"])
        guard failures.isEmpty else {
            throw APIError(.conflict, "\(total.nodes) nodes deleted; \(failures.count) entries could not be now, try again: \(failures.prefix(3).joined(separator: "; "))")
        }
        return try jsonResponse(total)
    }

    /// The leader's purge of one entry past the retention (`BinPurger`): at most `budget`
    /// nodes a call.
    func purgeDue(_ entry: BinPurge.Due, budget: Int) async throws -> PurgeResult {
        try await purgeEntry(entry.account, entry.node, trashedAt: entry.trashedAt, budget: budget)
    }

    /// Purges a bin entry: claims it first (its `bin/` key goes, so no restore starts after),
    /// then removes the node and all below it. An entry whose node is no longer in the bin
    /// (restored; or put there again later, when `trashedAt` is given) only loses its stale
    /// index keys.
    func purgeEntry(_ account: String, _ id: String, trashedAt: Int64?, budget: Int = Limits.purgeNodesMax) async throws -> PurgeResult {
        let current = try await read(TreeNodeInfo.self, treeKey(account, id))
        guard let (node, revision) = current, let at = node.trashedAt, trashedAt == nil || trashedAt == at else {
            var stale: [MetadataMutation] = []
            if let trashedAt { stale.append(.delete(Keyspace.binOrder(trashedAt, account, id))) }
            if current?.0.trashedAt == nil { stale.append(.delete(Keyspace.binEntry(account, id))) }
            if !stale.isEmpty { _ = try await metadata.commit(if: [], then: stale) }
            return PurgeResult(nodes: 0, bytes: 0)
        }
        // The claim: conditioned on the node as read, so a restore that won the race keeps it.
        if try await metadata.get(Keyspace.binEntry(account, id)) != nil {
            guard try await metadata.commit(if: [.revision(treeKey(account, id), revision)], then: [.delete(Keyspace.binEntry(account, id))]) != nil else {
                throw APIError(.conflict, "node \(id) changed while its purge began")
            }
        }
        return try await purgeTree(account, id, budget: budget)
    }
}
