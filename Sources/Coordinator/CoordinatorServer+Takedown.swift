import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird
import Metadata
import Transparency

/// Takedowns and the transparency log (Docs/policy.md).
///
/// An operator acts on a link id, never a key: a takedown disables a link, or the linked file
/// and so every link to it, in every country or in one (the coordinators of that country refuse
/// it; the others serve it). Nothing is deleted: a restore brings everything back. Every
/// takedown, restore and appeal is appended to the transparency log in the same transaction as
/// the change it records, so the log and the state never disagree.
extension CoordinatorServer {
    struct StoredTakedown: Codable {
        var ownerId: String
        var info: TakedownInfo
    }

    /// The log's key: the key file's when configured (validated at start), else derived from
    /// the admin token.
    var transparency: TransparencyLog {
        if let text = configuration.transparencyKey, let seed = try? TransparencyLog.seed(keyFile: text), let log = try? TransparencyLog(seed: seed) {
            return log
        }
        return TransparencyLog(adminToken: configuration.adminToken)
    }

    // MARK: - Refusals

    /// 451 with the first takedown among `notices` that binds this coordinator's country.
    func refuseTakenDown(_ notices: [TakedownNotice]) throws {
        guard let notice = notices.first(where: { $0.scope.binds(configuration.country) }) else { return }
        throw APIError(notice.code, notice.message, takedown: notice)
    }

    /// 451 `file_taken_down` when a file takedown of this node binds here.
    func refuseFileTakenDown(owner: String, _ node: String) async throws {
        let entries = try await metadata.list(prefix: Keyspace.fileTakedowns(owner, node), after: nil, limit: Limits.takedownsPerTargetMax)
        try refuseTakenDown(entries.compactMap { try? JSONDecoder().decode(TakedownNotice.self, from: Data($0.value)) })
    }

    // MARK: - The operator's side

    /// `POST /v1/admin/takedowns`: takes a link (or, with `file`, the linked file) down.
    func adminCreateTakedown(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let body = try await decodeBody(CreateTakedownRequest.self, request, limit: 4096)
        guard let raw = Base64URL.decode(body.linkId), raw.count == 16 else {
            throw APIError(.invalidArgument, "a link id is base64url of 16 bytes (the part of the link after /l/ and before #)")
        }
        let notice = try validText(body.notice, "notice", max: Limits.takedownNoticeBytesMax)
        let scope: TakedownScope
        do throws(ModelError) { scope = try TakedownScope(parsing: body.scope ?? "global") } catch { throw APIError(.invalidArgument, error.message) }
        let target = body.file == true || body.nodeId != nil ? "file" : "link"
        let below = try body.nodeId.map { try validNodeId($0) }
        for _ in 0..<Limits.treeCommitAttemptsMax {
            guard let (link, linkRevision) = try await read(StoredLink.self, Keyspace.link(body.linkId)) else {
                throw APIError(.notFound, "no link \(body.linkId) (a revoked link serves nothing already)")
            }
            guard let (linked, _) = try await read(TreeNodeInfo.self, treeKey(link.owner, link.info.nodeId)) else {
                throw APIError(.notFound, "link \(body.linkId) leads nowhere: its node was deleted")
            }
            // A file below a folder link: only one the link reaches.
            var node = linked
            if let below { node = try await self.node(below, under: PublicLink(link: link.info, node: linked), owner: link.owner) }
            if target == "file", node.type != "file" {
                throw APIError(
                    .invalidArgument,
                    "node \(node.id) of link \(body.linkId) is a folder: take the link down (without --file), or a file below it (--node ID)")
            }
            let inForce: [TakedownNotice]
            if target == "file" {
                inForce = try await metadata.list(prefix: Keyspace.fileTakedowns(link.owner, node.id), after: nil, limit: Limits.takedownsPerTargetMax)
                    .compactMap { try? JSONDecoder().decode(TakedownNotice.self, from: Data($0.value)) }
            } else {
                inForce = link.takedowns ?? []
            }
            if let same = inForce.first(where: { $0.scope == scope }) {
                throw APIError(.conflict, "this \(target) is taken down \(scope.words) already, by takedown \(same.id)")
            }
            guard inForce.count < Limits.takedownsPerTargetMax else {
                throw APIError(.limitExceeded, "this \(target) has \(inForce.count) takedowns in force, the most it may have")
            }
            let owner = try await read(AccountRecord.self, Keyspace.account(link.owner))?.0.username ?? link.owner
            let id = Self.takedownId(at: now())
            let made = TakedownNotice(id: id, target: target, reason: body.reason, notice: notice, scope: scope, createdAt: now())
            let info = TakedownInfo(notice: made, linkId: body.linkId, nodeId: node.id, owner: owner)
            var mutations: [MetadataMutation] = [
                .put(Keyspace.takedown(id), encode(StoredTakedown(ownerId: link.owner, info: info))), .put(Keyspace.takedownOf(link.owner, id), []),
            ]
            if target == "file" {
                mutations.append(.put(Keyspace.fileTakedown(link.owner, node.id, id), encode(made)))
            } else {
                var changed = link
                changed.takedowns = inForce + [made]
                mutations.append(.put(Keyspace.link(body.linkId), encode(changed)))
            }
            if try await commitLogged(if: [.revision(Keyspace.link(body.linkId), linkRevision)], then: mutations, Self.event("takedown", info)) {
                logger.notice(
                    "takedown", metadata: ["takedown.id": "\(id)", "takedown.target": "\(target)", "takedown.scope": "\(scope)", "account.id": "\(link.owner)"])
                return try jsonResponse(info, status: .created)
            }
        }
        throw APIError(.conflict, "the link kept changing; try again")
    }

    /// `GET /v1/admin/takedowns?after=ID`: every takedown, oldest first, a page at a time.
    func adminListTakedowns(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let after = try request.uri.queryParameters.get("after").map { try Self.validTakedownId(String($0)) }
        let page = try await metadata.list(prefix: Keyspace.takedowns, after: after.map(Keyspace.takedown), limit: Limits.takedownsPageMax)
        let takedowns = page.compactMap { try? JSONDecoder().decode(StoredTakedown.self, from: Data($0.value)).info }
        return try jsonResponse(TakedownList(takedowns: takedowns, next: page.count == Limits.takedownsPageMax ? takedowns.last?.notice.id : nil))
    }

    /// `GET /v1/admin/takedowns/{id}`.
    func adminShowTakedown(_ request: Request, _ context: ServiceContext) async throws -> Response {
        try requireAdmin(request)
        return try jsonResponse(try await storedTakedown(context).0.info)
    }

    /// `POST /v1/admin/takedowns/{id}/restore`: the link (or file) is served again; the
    /// takedown stays on record, restored.
    func adminRestoreTakedown(_ request: Request, _ context: ServiceContext) async throws -> Response {
        try requireAdmin(request)
        let body = try await decodeBody(RestoreTakedownRequest.self, request, limit: 4096)
        let note = try body.note.map { try validText($0, "note", max: Limits.takedownNoticeBytesMax) }
        for _ in 0..<Limits.treeCommitAttemptsMax {
            var (stored, revision) = try await storedTakedown(context)
            let info = stored.info
            guard info.inForce else { throw APIError(.conflict, "takedown \(info.notice.id) was restored already") }
            stored.info.restoredAt = now()
            stored.info.restoreNote = note
            var conditions: [MetadataCondition] = [.revision(Keyspace.takedown(info.notice.id), revision)]
            var mutations: [MetadataMutation] = [.put(Keyspace.takedown(info.notice.id), encode(stored))]
            if info.notice.target == "file" {
                mutations.append(.delete(Keyspace.fileTakedown(stored.ownerId, info.nodeId, info.notice.id)))
            } else if let (link, linkRevision) = try await read(StoredLink.self, Keyspace.link(info.linkId)) {
                // (A link its owner revoked meanwhile has nothing to restore.)
                var changed = link
                changed.takedowns = (link.takedowns ?? []).filter { $0.id != info.notice.id }
                if changed.takedowns?.isEmpty == true { changed.takedowns = nil }
                conditions.append(.revision(Keyspace.link(info.linkId), linkRevision))
                mutations.append(.put(Keyspace.link(info.linkId), encode(changed)))
            }
            if try await commitLogged(if: conditions, then: mutations, Self.event("restore", info)) {
                logger.notice("takedown restored", metadata: ["takedown.id": "\(info.notice.id)"])
                return try jsonResponse(stored.info)
            }
        }
        throw APIError(.conflict, "the takedown kept changing; try again")
    }

    // MARK: - The owner's side

    /// `GET /v1/takedowns?after=ID`: the takedowns of the caller's links and files, restored
    /// ones included.
    func ownTakedowns(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request, allowingSuspended: true)
        let after = try request.uri.queryParameters.get("after").map { try Self.validTakedownId(String($0)) }
        let page = try await metadata.list(
            prefix: Keyspace.takedownsOf(account.id), after: after.map { Keyspace.takedownOf(account.id, $0) }, limit: Limits.takedownsPageMax)
        var takedowns: [TakedownInfo] = []
        for entry in page {
            let id = String(entry.key.dropFirst(Keyspace.takedownsOf(account.id).count))
            if let (stored, _) = try await read(StoredTakedown.self, Keyspace.takedown(id)) { takedowns.append(stored.info) }
        }
        let next = page.count == Limits.takedownsPageMax ? page.last.map { String($0.key.dropFirst(Keyspace.takedownsOf(account.id).count)) } : nil
        return try jsonResponse(TakedownList(takedowns: takedowns, next: next))
    }

    /// `POST /v1/takedowns/{id}/appeal`: the owner's counter-notice, kept with the takedown
    /// for the operator (the log records that there was one, not what it says).
    func appealTakedown(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let (account, _) = try await authenticate(request, allowingSuspended: true)
        let body = try await decodeBody(AppealTakedownRequest.self, request, limit: 16 << 10)
        let message = try validText(body.message, "message", max: Limits.appealBytesMax, multiline: true)
        for _ in 0..<Limits.treeCommitAttemptsMax {
            var (stored, revision) = try await storedTakedown(context)
            let info = stored.info
            // Another account's takedown is not found, as one that does not exist.
            guard stored.ownerId == account.id else { throw APIError(.notFound, "no takedown \(info.notice.id) of yours") }
            guard info.appeals.count < Limits.appealsPerTakedownMax else {
                throw APIError(.limitExceeded, "takedown \(info.notice.id) has \(info.appeals.count) appeals, the most it may have")
            }
            stored.info.appeals.append(TakedownAppeal(at: now(), message: message))
            if try await commitLogged(
                if: [.revision(Keyspace.takedown(info.notice.id), revision)], then: [.put(Keyspace.takedown(info.notice.id), encode(stored))],
                Self.event("appeal", info))
            {
                logger.notice("takedown appealed", metadata: ["takedown.id": "\(info.notice.id)", "account.id": "\(account.id)"])
                return try jsonResponse(stored.info, status: .created)
            }
        }
        throw APIError(.conflict, "the takedown kept changing; try again")
    }

    // MARK: - The transparency log

    /// What the log records of an action on a takedown: the link id hashed, never the owner.
    static func event(_ action: String, _ info: TakedownInfo) -> TransparencyEvent {
        TransparencyEvent(
            action: action, takedown: info.notice.id, target: info.notice.target, subject: TransparencyLog.subject(info.linkId),
            reason: info.notice.reason.rawValue, scope: info.notice.scope.description, notice: info.notice.notice)
    }

    /// `GET /v1/transparency?after=SEQ&limit=N`: the log, oldest first, for anyone.
    func transparencyPage(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var after: Int64?
        if let text = query.get("after") {
            guard let value = Int64(text), value >= 0 else { throw APIError(.invalidArgument, "after is an entry's sequence number, got \(text)") }
            after = value
        }
        var limit = Limits.transparencyPageMax
        if let text = query.get("limit") {
            guard let value = Int(text), (1...Limits.transparencyPageMax).contains(value) else {
                throw APIError(.invalidArgument, "limit is 1 to \(Limits.transparencyPageMax), got \(text)")
            }
            limit = value
        }
        let page = try await metadata.list(prefix: Keyspace.transparencyEntries, after: after.map(Keyspace.transparencyEntry), limit: limit)
        var entries: [TransparencyEntry] = []
        for entry in page {
            guard let decoded = try? JSONDecoder().decode(TransparencyEntry.self, from: Data(entry.value)) else {
                throw APIError(.storageFailure, "transparency entry \(entry.key) is unreadable")
            }
            entries.append(decoded)
        }
        return try jsonResponse(TransparencyPage(entries: entries, next: page.count == limit ? entries.last?.seq : nil, publicKey: transparency.publicKey))
    }

    /// Commits `mutations` under `conditions` together with the log's next entry for `event`,
    /// conditioned on the log's head: false when a condition failed (the caller reads again);
    /// a race with another append is tried again here.
    func commitLogged(if conditions: [MetadataCondition], then mutations: [MetadataMutation], _ event: TransparencyEvent) async throws -> Bool {
        let log = transparency
        for _ in 0..<Limits.treeCommitAttemptsMax {
            let headEntry = try await metadata.get(Keyspace.transparencyHead)
            let head = try headEntry.map { entry in
                do { return try JSONDecoder().decode(TransparencyHead.self, from: Data(entry.value)) } catch {
                    throw APIError(.storageFailure, "the transparency log's head is unreadable")
                }
            }
            let entry = log.entry(after: head, at: now(), event)
            let headCondition: MetadataCondition = headEntry.map { .revision(Keyspace.transparencyHead, $0.modRevision) } ?? .absent(Keyspace.transparencyHead)
            if try await metadata.commit(
                if: conditions + [headCondition],
                then: mutations + [
                    .put(Keyspace.transparencyEntry(entry.seq), encode(entry)), .put(Keyspace.transparencyHead, encode(TransparencyHead(seq: entry.seq, hash: entry.hash))),
                ]) != nil
            {
                return true
            }
            // Which condition failed? Only the head's moving is ours to retry.
            let current = try await metadata.get(Keyspace.transparencyHead)
            if current?.modRevision == headEntry?.modRevision { return false }
        }
        return false
    }

    // MARK: - Input

    func storedTakedown(_ context: ServiceContext) async throws -> (StoredTakedown, Int64) {
        let id = try Self.validTakedownId(try context.parameters.require("id"))
        guard let found = try await read(StoredTakedown.self, Keyspace.takedown(id)) else { throw APIError(.notFound, "no takedown \(id)") }
        return found
    }

    /// A takedown id: its creation time (13 digits of milliseconds, so ids sort by age), a
    /// dash, 8 random base64url characters.
    static func takedownId(at time: Int64) -> String { String(format: "%013lld", time) + "-" + randomToken(6) }

    static func validTakedownId(_ text: String) throws -> String {
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 13, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }), parts[1].utf8.count == 8,
            Base64URL.decode(String(parts[1])) != nil
        else { throw APIError(.invalidArgument, "a takedown id is 13 digits, a dash and 8 base64url characters, got \(text.prefix(40))") }
        return text
    }

    /// Text for people (a notice reference, a note, an appeal): not empty, at most `max` bytes,
    /// no control characters (but line breaks where `multiline`).
    func validText(_ text: String, _ field: String, max: Int, multiline: Bool = false) throws -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw APIError(.invalidArgument, "\(field) is empty") }
        guard trimmed.utf8.count <= max else { throw APIError(.limitExceeded, "\(field) of \(trimmed.utf8.count) bytes exceeds \(max)") }
        guard trimmed.unicodeScalars.allSatisfy({ !($0.properties.generalCategory == .control) || (multiline && ($0 == "\n" || $0 == "\t")) }) else {
            throw APIError(.invalidArgument, "\(field) holds control characters")
        }
        return trimmed
    }
}
