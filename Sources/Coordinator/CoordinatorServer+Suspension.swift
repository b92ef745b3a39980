import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import Hummingbird
import Metadata
import Transparency

/// Accounts as the operator runs them (Docs/policy.md, "Accounts"): shown, their storage quota
/// set, suspended and unsuspended. A suspension and its lifting are logged in the
/// transparency log with the account id hashed.
extension CoordinatorServer {
    /// 403 `account_suspended` for a suspended account.
    func refuseSuspended(_ account: AccountRecord) throws {
        guard let suspension = account.suspension else { return }
        throw APIError(.accountSuspended, "account \(account.username) is suspended by the operator: \(suspension.reason)")
    }

    /// The account named in the path (`username`).
    func namedAccount(_ context: ServiceContext) async throws -> (AccountRecord, Int64) {
        try await account(named: try context.parameters.require("username"))
    }

    func adminView(_ account: AccountRecord) async throws -> AdminAccount {
        AdminAccount(
            accountId: account.id, username: account.username, createdAt: account.createdAt, quotaBytes: account.quotaBytes, usedBytes: account.usedBytes,
            suspension: account.suspension, keysPublished: account.keys != nil, excludedCountries: account.excludedCountries,
            transfer: await transferUse(account))
    }

    /// `GET /v1/admin/accounts/{username}`.
    func adminShowAccount(_ request: Request, _ context: ServiceContext) async throws -> Response {
        try requireAdmin(request)
        return try jsonResponse(try await adminView(try await namedAccount(context).0))
    }

    /// `PATCH /v1/admin/accounts/{username}`: sets the storage quota, the transfer quota or both.
    func adminSetAccount(_ request: Request, _ context: ServiceContext) async throws -> Response {
        try requireAdmin(request)
        let body = try await decodeBody(SetAccountRequest.self, request, limit: 4096)
        guard body.quotaBytes != nil || body.transferQuotaBytes != nil else {
            throw APIError(.invalidArgument, "nothing to set: give quotaBytes, transferQuotaBytes or both")
        }
        for (name, value) in [("quotaBytes", body.quotaBytes), ("transferQuotaBytes", body.transferQuotaBytes)] {
            guard let value, value < 0 || value > Limits.accountQuotaBytesMax else { continue }
            throw APIError(.invalidArgument, "\(name) is 0 to \(Limits.accountQuotaBytesMax), got \(value)")
        }
        for _ in 0..<Limits.treeCommitAttemptsMax {
            let (account, revision) = try await namedAccount(context)
            var changed = account
            if let quota = body.quotaBytes { changed.quotaBytes = quota }
            if let transfer = body.transferQuotaBytes { changed.transferQuotaBytes = transfer }
            if try await metadata.commit(if: [.revision(Keyspace.account(account.id), revision)], then: [.put(Keyspace.account(account.id), encode(changed))]) != nil {
                logger.notice(
                    "account quota set",
                    metadata: ["account.id": "\(account.id)", "account.quota": "\(changed.quotaBytes)", "account.transfer_quota": "\(transferQuota(changed))"])
                return try jsonResponse(try await adminView(changed))
            }
        }
        throw APIError(.conflict, "the account kept changing; try again")
    }

    /// `POST /v1/admin/accounts/{username}/suspend` and `/unsuspend`.
    func adminSuspend(_ request: Request, _ context: ServiceContext, suspend: Bool) async throws -> Response {
        try requireAdmin(request)
        let body = try await decodeBody(SuspendAccountRequest.self, request, limit: 4096)
        let reason = try validText(body.reason, "reason", max: Limits.takedownNoticeBytesMax)
        for _ in 0..<Limits.treeCommitAttemptsMax {
            let (account, revision) = try await namedAccount(context)
            guard (account.suspension == nil) == suspend else {
                throw APIError(.conflict, "account \(account.username) is \(suspend ? "suspended already" : "not suspended")")
            }
            var changed = account
            changed.suspension = suspend ? AccountSuspension(reason: reason, at: now()) : nil
            let event = TransparencyEvent(
                action: suspend ? "suspend" : "unsuspend", takedown: "", target: "account", subject: TransparencyLog.subject(account.id), reason: "",
                scope: TakedownScope.global.description, notice: reason)
            if try await commitLogged(
                if: [.revision(Keyspace.account(account.id), revision)], then: [.put(Keyspace.account(account.id), encode(changed))], event)
            {
                logger.notice(suspend ? "account suspended" : "account unsuspended", metadata: ["account.id": "\(account.id)"])
                return try jsonResponse(try await adminView(changed))
            }
        }
        throw APIError(.conflict, "the account kept changing; try again")
    }
}
