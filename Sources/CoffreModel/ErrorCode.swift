/// A stable, machine-readable error code, shared by every module's error type.
///
/// The API maps these to JSON error codes, so a code's spelling never changes once released.
/// It is a struct rather than an enum so that new codes do not break exhaustive switches in
/// other modules (swift-nio's `FileSystemError.Code` does the same).
public struct ErrorCode: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }

    // Access.
    public static let unauthenticated = ErrorCode("unauthenticated")
    public static let forbidden = ErrorCode("forbidden")
    public static let conflict = ErrorCode("conflict")
    public static let quotaExceeded = ErrorCode("quota_exceeded")
    /// The folder already holds a node of that name (names compare after normalisation).
    public static let nameTaken = ErrorCode("name_taken")
    /// The folder's key is changing (a share of it ended), or must change before it takes
    /// new names: its owner's client finishes the change (`coffre rekey`), then it is retried.
    public static let keyChanging = ErrorCode("key_changing")
    /// The request was made under a key that has changed since it was read (the folder got a
    /// new key, or the child was re-wrapped): read again, then retry.
    public static let keyChanged = ErrorCode("key_changed")

    // Input and limits.
    public static let invalidArgument = ErrorCode("invalid_argument")
    public static let limitExceeded = ErrorCode("limit_exceeded")
    /// The request itself is malformed at the HTTP level (framing, headers, encoding).
    public static let badRequest = ErrorCode("bad_request")
    /// The client took too long: to send its headers, or to make progress with its body.
    public static let timeout = ErrorCode("timeout")
    /// Too many attempts (logins, registrations) from one account or address: retry after
    /// the `Retry-After` header's seconds.
    public static let rateLimited = ErrorCode("rate_limited")
    /// A `Range` that selects no byte of the file (416, with `Content-Range: bytes */LENGTH`).
    public static let rangeNotSatisfiable = ErrorCode("range_not_satisfiable")
    /// The owner's files served more bytes in the transfer window than its transfer quota
    /// allows (429, with `Retry-After` when waiting will do; Docs/policy.md).
    public static let transferQuotaExceeded = ErrorCode("transfer_quota_exceeded")

    // Cryptography. One code for every failure to authenticate, by design (see Docs/format.md).
    public static let decryptionFailed = ErrorCode("decryption_failed")
    public static let weakParameters = ErrorCode("weak_parameters")
    public static let signatureInvalid = ErrorCode("signature_invalid")
    public static let cryptoFailure = ErrorCode("crypto_failure")
    /// A record (a link record, a key record) in a version or with an algorithm this client
    /// does not know: a newer client may read it.
    public static let unsupportedVersion = ErrorCode("unsupported_version")
    /// A share link protected by a password was opened without one.
    public static let passwordRequired = ErrorCode("password_required")

    // Erasure coding.
    public static let tooFewShards = ErrorCode("too_few_shards")

    // Placement.
    public static let insufficientNodes = ErrorCode("insufficient_nodes")

    // Storage.
    public static let notFound = ErrorCode("not_found")
    public static let corrupt = ErrorCode("corrupt")
    public static let checksumMismatch = ErrorCode("checksum_mismatch")
    public static let storageFailure = ErrorCode("storage_failure")
    public static let unavailable = ErrorCode("unavailable")
    public static let compacted = ErrorCode("compacted")
    /// The metadata store refuses writes: etcd raised its NOSPACE alarm (Docs/operations.md).
    public static let metadataFull = ErrorCode("metadata_full")
    /// A storage node has no room: its disk is full or its declared capacity is used up.
    public static let nodeFull = ErrorCode("node_full")

    // Operations.
    /// A failover drill refused by its pre-flight check: some segment would fall under
    /// k + margin (Docs/operations.md, "Drills").
    public static let drillRefused = ErrorCode("drill_refused")

    // Accountability (Docs/policy.md).
    /// An operator took the link down on a notice (451, with the notice in the error body).
    public static let linkTakenDown = ErrorCode("link_taken_down")
    /// An operator took the file down on a notice: it, and every link to it (451).
    public static let fileTakenDown = ErrorCode("file_taken_down")
    /// The account is suspended by its operator: it cannot sign in or act, and its links
    /// serve nothing, until unsuspended (403; nothing is deleted).
    public static let accountSuspended = ErrorCode("account_suspended")
}

/// Every module's error: a stable code and a message for people (with the numbers).
public protocol CodedError: Error, CustomStringConvertible {
    var code: ErrorCode { get }
    var message: String { get }
}
