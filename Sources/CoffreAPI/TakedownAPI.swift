public import CoffreModel

// Takedowns and the transparency log (Docs/policy.md). The operator acts on a link id, never
// on a key: a takedown disables a link (or a file and every link to it) in every country or in
// one, keeps every byte, and can be restored.

/// Why a link was taken down.
public enum TakedownReason: String, Codable, Hashable, Sendable, CaseIterable {
    case copyright, illegal, other
}

/// Where a takedown binds: every coordinator, or those of one country (a court order in one
/// jurisdiction). Written `global` or `country:CC`.
public struct TakedownScope: Hashable, Sendable, Codable, CustomStringConvertible {
    /// nil: everywhere.
    public let country: Country?

    public static let global = TakedownScope(country: nil)
    public init(country: Country?) { self.country = country }

    public init(parsing text: String) throws(ModelError) {
        if text == "global" {
            country = nil
        } else if text.hasPrefix("country:") {
            country = try Country(String(text.dropFirst("country:".count)))
        } else {
            throw ModelError(.invalidArgument, "a scope is global or country:CC (an ISO 3166 alpha-2 code), got \"\(text)\"")
        }
    }

    public var description: String { country.map { "country:\($0.code)" } ?? "global" }

    /// Whether a coordinator of `country` refuses what this scope takes down.
    public func binds(_ country: String) -> Bool { self.country.map { $0.code == country.uppercased() } ?? true }

    /// In words, for messages: "in every country", "in FR".
    public var words: String { country.map { "in \($0.code)" } ?? "in every country" }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// What a refused request is told (in the error body's `takedown`), and what a link or file
/// record carries while a takedown is in force.
public struct TakedownNotice: Codable, Hashable, Sendable {
    public let id: String
    /// `link` (that link only) or `file` (the file and every link to it).
    public let target: String
    public let reason: TakedownReason
    /// The notice's reference, as the operator recorded it (a case number, a URL).
    public let notice: String
    public let scope: TakedownScope
    public let createdAt: Int64

    public init(id: String, target: String, reason: TakedownReason, notice: String, scope: TakedownScope, createdAt: Int64) {
        self.id = id
        self.target = target
        self.reason = reason
        self.notice = notice
        self.scope = scope
        self.createdAt = createdAt
    }

    /// The refusal's message, the same from every client and the browser page.
    public var message: String {
        let what = target == "file" ? "This file was taken down" : "This link was taken down"
        return "\(what) \(scope.words) (\(reason.rawValue), notice \(notice), takedown \(id))."
    }

    public var code: ErrorCode { target == "file" ? .fileTakenDown : .linkTakenDown }
}

/// `POST /v1/admin/takedowns`.
public struct CreateTakedownRequest: Codable, Hashable, Sendable {
    public let linkId: String
    public let reason: TakedownReason
    public let notice: String
    /// `global` or `country:CC`; `global` when absent.
    public let scope: String?
    /// Takes down the linked file itself, and so every link to it.
    public let file: Bool?
    /// With a folder link: the file below it to take down (its node id, as
    /// `coffre admin takedown verify` lists them); implies `file`.
    public let nodeId: String?

    public init(linkId: String, reason: TakedownReason, notice: String, scope: String?, file: Bool?, nodeId: String? = nil) {
        self.linkId = linkId
        self.reason = reason
        self.notice = notice
        self.scope = scope
        self.file = file
        self.nodeId = nodeId
    }
}

/// A counter-notice, as its owner wrote it.
public struct TakedownAppeal: Codable, Hashable, Sendable {
    public let at: Int64
    public let message: String
    public init(at: Int64, message: String) {
        self.at = at
        self.message = message
    }
}

/// A takedown as the operator and the owner see it.
public struct TakedownInfo: Codable, Hashable, Sendable {
    public var notice: TakedownNotice
    public var linkId: String
    public var nodeId: String
    /// The owner's username (for the operator; the owner's own listing has it too).
    public var owner: String
    public var restoredAt: Int64?
    public var restoreNote: String?
    public var appeals: [TakedownAppeal]

    public init(
        notice: TakedownNotice, linkId: String, nodeId: String, owner: String, restoredAt: Int64? = nil, restoreNote: String? = nil,
        appeals: [TakedownAppeal] = []
    ) {
        self.notice = notice
        self.linkId = linkId
        self.nodeId = nodeId
        self.owner = owner
        self.restoredAt = restoredAt
        self.restoreNote = restoreNote
        self.appeals = appeals
    }

    public var inForce: Bool { restoredAt == nil }
}

/// `GET /v1/admin/takedowns`, `GET /v1/takedowns`: a page; `next` is the `after` of the next.
public struct TakedownList: Codable, Hashable, Sendable {
    public let takedowns: [TakedownInfo]
    public let next: String?
    public init(takedowns: [TakedownInfo], next: String?) {
        self.takedowns = takedowns
        self.next = next
    }
}

/// `POST /v1/admin/takedowns/{id}/restore`.
public struct RestoreTakedownRequest: Codable, Hashable, Sendable {
    public let note: String?
    public init(note: String?) { self.note = note }
}

/// `POST /v1/takedowns/{id}/appeal`.
public struct AppealTakedownRequest: Codable, Hashable, Sendable {
    public let message: String
    public init(message: String) { self.message = message }
}

// MARK: - Accounts, as the operator sees them

/// An operator's suspension of an account: until it is lifted, the account can only sign in,
/// read why and see and appeal its takedowns; its links and shared folders serve nothing.
/// Nothing is deleted.
public struct AccountSuspension: Codable, Hashable, Sendable {
    public let reason: String
    public let at: Int64
    public init(reason: String, at: Int64) {
        self.reason = reason
        self.at = at
    }
}

/// `GET /v1/admin/accounts/{username}`: what the operator may know of an account (no key, no name
/// of a file: those are the client's).
public struct AdminAccount: Codable, Hashable, Sendable {
    public let accountId: String
    public let username: String
    public let createdAt: Int64
    public let quotaBytes: Int64
    public let usedBytes: Int64
    public let suspension: AccountSuspension?
    /// Whether its client published the public keys that user shares need.
    public let keysPublished: Bool
    /// The countries its new files may not go to (absent: none).
    public let excludedCountries: [String]?
    /// What its files served in the transfer window, against its transfer quota.
    public let transfer: TransferUse?

    public init(
        accountId: String, username: String, createdAt: Int64, quotaBytes: Int64, usedBytes: Int64, suspension: AccountSuspension?, keysPublished: Bool,
        excludedCountries: [String]? = nil, transfer: TransferUse? = nil
    ) {
        self.excludedCountries = excludedCountries
        self.transfer = transfer
        self.accountId = accountId
        self.username = username
        self.createdAt = createdAt
        self.quotaBytes = quotaBytes
        self.usedBytes = usedBytes
        self.suspension = suspension
        self.keysPublished = keysPublished
    }
}

/// `PATCH /v1/admin/accounts/{username}`: what an operator may change.
public struct SetAccountRequest: Codable, Hashable, Sendable {
    /// The storage quota, in bytes (at least what the account uses is not required: an
    /// account over its quota can delete, not add).
    public let quotaBytes: Int64?
    /// The transfer quota, in bytes per transfer window (0: its files serve nothing).
    public let transferQuotaBytes: Int64?
    public init(quotaBytes: Int64?, transferQuotaBytes: Int64? = nil) {
        self.quotaBytes = quotaBytes
        self.transferQuotaBytes = transferQuotaBytes
    }
}

/// `POST /v1/admin/accounts/{username}/suspend|unsuspend`.
public struct SuspendAccountRequest: Codable, Hashable, Sendable {
    /// Why; published in the transparency log (write nothing private here).
    public let reason: String
    public init(reason: String) { self.reason = reason }
}

/// `PUT /v1/account/excluded-countries`: countries none of the caller's new files goes to
/// (empty: none). The answer says whether the cluster can still place files.
public struct ExcludedCountries: Codable, Hashable, Sendable {
    public let countries: [String]
    /// In answers: whether the nodes that take shards outside them (and the cluster's own
    /// exclusions) number k + m now; uploads are refused with `insufficient_nodes` while not.
    public let placeable: Bool?
    public init(countries: [String], placeable: Bool? = nil) {
        self.countries = countries
        self.placeable = placeable
    }
}
