public import CoffreAPI
public import CoffreModel
import Foundation
public import Transparency

/// Takedowns, appeals and the transparency log (Docs/policy.md).
extension CoffreClient {
    // MARK: The operator

    /// Takes a link down, or with `file` the linked file and every link to it.
    public func adminCreateTakedown(_ request: CreateTakedownRequest) async throws -> TakedownInfo {
        try decode(TakedownInfo.self, try await send(.POST, "/v1/admin/takedowns", token: try adminToken(), json: request))
    }

    /// Every takedown, oldest first (all pages).
    public func adminTakedowns() async throws -> [TakedownInfo] {
        try await allPages { after in
            try decode(TakedownList.self, try await send(.GET, "/v1/admin/takedowns" + (after.map { "?after=" + $0 } ?? ""), token: try adminToken()))
        }
    }

    public func adminTakedown(_ id: String) async throws -> TakedownInfo {
        try decode(TakedownInfo.self, try await send(.GET, "/v1/admin/takedowns/" + (try pathComponent(id)), token: try adminToken()))
    }

    public func adminRestoreTakedown(_ id: String, note: String?) async throws -> TakedownInfo {
        try decode(
            TakedownInfo.self,
            try await send(.POST, "/v1/admin/takedowns/" + (try pathComponent(id)) + "/restore", token: try adminToken(), json: RestoreTakedownRequest(note: note)))
    }

    /// The node a link names, its attributes decrypted here (the fragment stays here).
    public func linkNode(_ url: String, password: String? = nil) async throws -> Entry {
        let (_, node, nodeKey) = try await openLink(url, password: password)
        let attributes = try Self.linkAttributes(node, nodeKey: nodeKey)
        return Entry(id: node.id, name: attributes.name, type: node.type, size: attributes.size, modified: attributes.modified, objectId: nil)
    }

    // MARK: Accounts

    public func adminAccount(_ username: String) async throws -> AdminAccount {
        try decode(AdminAccount.self, try await send(.GET, "/v1/admin/accounts/" + (try userComponent(username)), token: try adminToken()))
    }

    public func adminSetAccount(_ username: String, quotaBytes: Int64?, transferQuotaBytes: Int64? = nil) async throws -> AdminAccount {
        try decode(
            AdminAccount.self,
            try await send(
                .PATCH, "/v1/admin/accounts/" + (try userComponent(username)), token: try adminToken(),
                json: SetAccountRequest(quotaBytes: quotaBytes, transferQuotaBytes: transferQuotaBytes)))
    }

    /// Suspends (or with `suspend` false, unsuspends) an account; `reason` is published.
    public func adminSuspend(_ username: String, reason: String, suspend: Bool = true) async throws -> AdminAccount {
        try decode(
            AdminAccount.self,
            try await send(
                .POST, "/v1/admin/accounts/" + (try userComponent(username)) + (suspend ? "/suspend" : "/unsuspend"), token: try adminToken(),
                json: SuspendAccountRequest(reason: reason)))
    }

    private func userComponent(_ username: String) throws -> String {
        guard !username.isEmpty, let escaped = username.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) else {
            throw ClientError(.invalidArgument, "a username is needed")
        }
        return escaped
    }

    // MARK: The owner

    /// Countries none of the caller's new files goes to (empty: none).
    public func setExcludedCountries(_ countries: [String], _ session: Session) async throws -> ExcludedCountries {
        try decode(ExcludedCountries.self, try await send(.PUT, "/v1/account/excluded-countries", token: session.token, json: ExcludedCountries(countries: countries)))
    }

    /// The takedowns of the caller's links and files (restored ones too), oldest first.
    public func takedowns(_ session: Session) async throws -> [TakedownInfo] {
        try await allPages { after in
            try decode(TakedownList.self, try await send(.GET, "/v1/takedowns" + (after.map { "?after=" + $0 } ?? ""), token: session.token))
        }
    }

    /// Records the owner's counter-notice with the takedown.
    public func appealTakedown(_ id: String, message: String, _ session: Session) async throws -> TakedownInfo {
        try decode(
            TakedownInfo.self,
            try await send(.POST, "/v1/takedowns/" + (try pathComponent(id)) + "/appeal", token: session.token, json: AppealTakedownRequest(message: message)))
    }

    // MARK: The transparency log

    /// One page of the log after entry `after` (from the first when nil).
    public func transparency(after: Int64?, limit: Int? = nil) async throws -> TransparencyPage {
        var query: [String] = []
        if let after { query.append("after=\(after)") }
        if let limit { query.append("limit=\(limit)") }
        return try decode(TransparencyPage.self, try await send(.GET, "/v1/transparency" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))))
    }

    /// The whole log, oldest first, and the key the cluster signs with now. `progress` is
    /// told the entries read so far.
    public func transparencyLog(progress: (Int) -> Void = { _ in }) async throws -> (entries: [TransparencyEntry], publicKey: String) {
        var entries: [TransparencyEntry] = []
        var after: Int64?
        var key = ""
        repeat {
            let page = try await transparency(after: after)
            entries += page.entries
            key = page.publicKey
            // A page that does not move on would loop for ever: the server is wrong.
            if let next = page.next, let last = after, next <= last {
                throw ClientError(.corrupt, "the transparency log's pages do not advance (after \(last), next \(next))")
            }
            after = page.next
            progress(entries.count)
        } while after != nil
        return (entries, key)
    }

    private func allPages(_ page: (String?) async throws -> TakedownList) async throws -> [TakedownInfo] {
        var all: [TakedownInfo] = []
        var after: String?
        repeat {
            let list = try await page(after)
            all += list.takedowns
            guard list.next != after else { break }
            after = list.next
        } while after != nil
        return all
    }

    /// A path segment the client sends as given: base64url and digits only.
    private func pathComponent(_ text: String) throws -> String {
        guard !text.isEmpty, text.utf8.count <= 64, text.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) })
        else { throw ClientError(.invalidArgument, "a takedown id is 13 digits, a dash and 8 base64url characters, got \(text.prefix(40))") }
        return text
    }
}

extension CoffreClient {
    /// The link id of a share link URL (`https://host/l/ID#SECRET`), or of a bare id: what a
    /// takedown names. The fragment never leaves this machine.
    public static func linkId(of text: String) throws -> String {
        var id = text
        if text.contains("/") {
            let beforeFragment = text.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            guard let range = beforeFragment.range(of: "/l/") else { throw ClientError(.invalidArgument, "\(text.prefix(80)) is not a share link (https://HOST/l/ID#KEY)") }
            id = String(beforeFragment[range.upperBound...].prefix { $0 != "/" && $0 != "?" })
        }
        guard let raw = Base64URL.decode(id), raw.count == 16 else {
            throw ClientError(.invalidArgument, "a link id is base64url of 16 bytes (22 characters), got \(id.prefix(40))")
        }
        return id
    }
}
