import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird

/// Transfer quotas (Docs/policy.md, "Transfer quotas"): every byte of a file served counts to
/// its owner, whoever asked (the owner, someone it shares a folder with, anyone with a link).
extension CoordinatorServer {
    func transferQuota(_ account: AccountRecord) -> Int64 { account.transferQuotaBytes ?? configuration.transferQuotaBytesDefault }

    /// Admits a download of `wanted` bytes of the owner's files, its bytes reserved until
    /// sent; 429 `transfer_quota_exceeded` when they would take the owner past its quota, with
    /// `Retry-After` when enough of what was served leaves the window by then. The message
    /// gives no figure of the owner's: a link's visitor learns nothing of its use.
    func admitTransfer(_ owner: AccountRecord, wanted: Int64) async throws -> TransferMeter.Reservation {
        switch try await transfers.admit(owner.id, wanted: wanted, limit: transferQuota(owner)) {
        case .admitted(let reservation):
            return reservation
        case .refused(waitMilliseconds: nil):
            throw APIError(
                .transferQuotaExceeded,
                "this download (\(ByteCount(wanted))) is more than the owner's whole transfer quota: ask for it in ranges (Range), or the owner for more quota")
        case .refused(waitMilliseconds: let wait?):
            let seconds = (wait + 999) / 1000
            var fields = HTTPFields()
            fields[.retryAfter] = String(seconds)
            throw APIError(.transferQuotaExceeded, "the owner's transfer quota is used up: this download fits again in \(seconds) s", headers: fields)
        }
    }

    /// What the account's files served in the window, as this coordinator knows it.
    /// Nil when the counts cannot be read now (the rest of the answer still goes).
    func transferUse(_ account: AccountRecord) async -> TransferUse? {
        guard let usage = try? await transfers.usage(account.id) else { return nil }
        let time = objects.clock.wallMillis()
        return TransferUse(
            quotaBytes: transferQuota(account), usedBytes: transfers.window.used(usage, at: time),
            windowSeconds: transfers.window.milliseconds / 1000, resetsAt: transfers.window.resetsAt(usage, at: time))
    }
}
