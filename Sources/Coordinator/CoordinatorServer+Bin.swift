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
            if let tag = node.nameTag { mutations.append(.delete(nameKey(account, node.parent, tag))) }
            if try await metadata.commit(if: [.revision(treeKey(account, id), revision)], then: mutations) != nil {
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
            let parent = try await checkParent(account, node.parent)
            if let (folder, _) = parent, folder.trashedAt != nil {
                throw APIError(.conflict, "its folder \(folder.id) is in the rubbish bin too: restore that first")
            }
            var restored = node
            restored.trashedAt = nil
            var conditions: [MetadataCondition] = [.revision(treeKey(account, id), revision)]
            var mutations: [MetadataMutation] = [
                .put(treeKey(account, id), encode(restored)), .put(childKey(account, node.parent, id), encode(restored)),
                .delete(Keyspace.binEntry(account, id)), .delete(Keyspace.binOrder(trashedAt, account, id)),
            ]
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

    /// `DELETE /v1/bin`: everything in the caller's bin, for good.
    func emptyBin(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request)
        var total = PurgeResult(nodes: 0, bytes: 0)
        while true {
            let page = try await metadata.list(prefix: Keyspace.bin(account.id), after: nil, limit: Limits.binPageMax)
            guard !page.isEmpty else { break }
            for entry in page {
                let removed = try await purgeTree(account.id, String(entry.key.dropFirst(Keyspace.bin(account.id).utf8.count)))
                total = PurgeResult(nodes: total.nodes + removed.nodes, bytes: total.bytes + removed.bytes)
            }
            // An entry whose node is gone (a crash between two transactions) goes by itself.
            for entry in page where try await metadata.get(entry.key) != nil { try await metadata.delete(entry.key) }
        }
        logger.info("rubbish bin emptied", metadata: ["account.id": "\(account.id)", "bin.nodes": "\(total.nodes)"])
        return try jsonResponse(total)
    }

    /// The leader's purge: entries older than the retention, oldest first (`BinPurger`).
    func purgeDue(_ entry: BinPurge.Due) async throws -> PurgeResult {
        guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(entry.account, entry.node)), node.trashedAt == entry.trashedAt else {
            // Restored, or purged already, meanwhile: only the stale order entry is left.
            try await metadata.delete(Keyspace.binOrder(entry.trashedAt, entry.account, entry.node))
            return PurgeResult(nodes: 0, bytes: 0)
        }
        return try await purgeTree(entry.account, entry.node)
    }
}
