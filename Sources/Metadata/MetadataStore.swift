public import CoffreModel

/// The cluster's shared truth: manifests, the tree, accounts, leases. One protocol, two
/// backends that pass one conformance suite (`Tests/MetadataTests`):
/// - `EmbeddedMetadataStore`: RocksDB on the coordinator's disk, for a single coordinator;
/// - `EtcdMetadataStore`: a real etcd cluster (v3 API, JSON gateway), for many.
///
/// The model is etcd's: a sorted key space, a cluster-wide revision that every change
/// increments, conditional multi-key transactions, leases, and watches from a revision.
public protocol MetadataStore: Sendable {
    /// The entry at `key`, or nil.
    func get(_ key: String) async throws(MetadataError) -> MetadataEntry?

    /// Entries whose key starts with `prefix`, in key order, strictly after `after`.
    func list(prefix: String, after: String?, limit: Int) async throws(MetadataError) -> [MetadataEntry]

    /// Applies `mutations` atomically if every condition holds.
    /// - Returns: the new revision, or nil when a condition failed (nothing was applied).
    func commit(if conditions: [MetadataCondition], then mutations: [MetadataMutation]) async throws(MetadataError) -> Int64?

    /// A lease that expires `ttlSeconds` after its last renewal; keys put with it go with it.
    func grantLease(ttlSeconds: Int) async throws(MetadataError) -> LeaseID

    /// Renews a lease. Throws `notFound` when it has already expired or been revoked.
    func renewLease(_ lease: LeaseID) async throws(MetadataError)

    /// Ends a lease now, deleting its keys. Revoking an unknown lease is not an error.
    func revokeLease(_ lease: LeaseID) async throws(MetadataError)

    /// Changes under `prefix`, from `revision` (inclusive) or from now when nil.
    ///
    /// Ends with `compacted` when `revision` is older than the history the store keeps.
    func watch(prefix: String, fromRevision revision: Int64?) -> AsyncThrowingStream<MetadataEvent, any Error>

    /// Alarms the store raised that an operator must act on (etcd's NOSPACE); empty when
    /// healthy.
    func alarms() async throws(MetadataError) -> [String]
}

/// A stored value with its revisions.
public struct MetadataEntry: Hashable, Sendable {
    public let key: String
    public let value: [UInt8]
    /// Revision of the last change to this key: the compare-and-swap version.
    public let modRevision: Int64
    /// Revision at which the key was created.
    public let createRevision: Int64
    public let lease: LeaseID?

    public init(key: String, value: [UInt8], modRevision: Int64, createRevision: Int64, lease: LeaseID?) {
        self.key = key
        self.value = value
        self.modRevision = modRevision
        self.createRevision = createRevision
        self.lease = lease
    }
}

/// A condition of a transaction.
public enum MetadataCondition: Hashable, Sendable {
    /// The key does not exist.
    case absent(String)
    /// The key exists and was last changed at exactly this revision.
    case revision(String, Int64)
}

/// A change in a transaction.
public enum MetadataMutation: Hashable, Sendable {
    case put(String, [UInt8], lease: LeaseID?)
    case delete(String)

    public static func put(_ key: String, _ value: [UInt8]) -> MetadataMutation { .put(key, value, lease: nil) }
}

/// A change seen by a watch.
public struct MetadataEvent: Hashable, Sendable {
    public enum Kind: Hashable, Sendable { case put, delete }
    public let kind: Kind
    public let key: String
    /// The new value (empty for a delete).
    public let value: [UInt8]
    public let revision: Int64
}

/// A lease id (etcd's 64-bit lease id).
public struct LeaseID: Hashable, Sendable, CustomStringConvertible {
    public let value: Int64
    public init(_ value: Int64) { self.value = value }
    public var description: String { String(value) }
}

extension MetadataStore {
    public func alarms() async throws(MetadataError) -> [String] { [] }

    /// Puts unconditionally; returns the new revision.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: LeaseID? = nil) async throws(MetadataError) -> Int64 {
        guard let revision = try await commit(if: [], then: [.put(key, value, lease: lease)]) else {
            preconditionFailure("an unconditional commit cannot fail its conditions")
        }
        return revision
    }

    /// Creates a key that must not exist; nil when it does.
    public func create(_ key: String, _ value: [UInt8], lease: LeaseID? = nil) async throws(MetadataError) -> Int64? {
        try await commit(if: [.absent(key)], then: [.put(key, value, lease: lease)])
    }

    /// Replaces a key last changed at `revision`; nil when it changed since (or is gone).
    public func compareAndSwap(_ key: String, revision: Int64, _ value: [UInt8]) async throws(MetadataError) -> Int64? {
        try await commit(if: [.revision(key, revision)], then: [.put(key, value, lease: nil)])
    }

    /// Deletes a key unconditionally.
    public func delete(_ key: String) async throws(MetadataError) {
        _ = try await commit(if: [], then: [.delete(key)])
    }

    public func list(prefix: String, limit: Int = Limits.metadataListPageMax) async throws(MetadataError) -> [MetadataEntry] {
        try await list(prefix: prefix, after: nil, limit: limit)
    }
}

/// Checks keys and values against the limits both backends share.
enum MetadataValidation {
    static func check(key: String) throws(MetadataError) {
        let size = key.utf8.count
        guard size >= 1, size <= Limits.metadataKeySizeMax else {
            throw MetadataError(.invalidArgument, "metadata key must be 1...\(Limits.metadataKeySizeMax) bytes, got \(size)")
        }
    }

    static func check(_ conditions: [MetadataCondition], _ mutations: [MetadataMutation]) throws(MetadataError) {
        guard conditions.count + mutations.count <= Limits.metadataTransactionOperationsMax else {
            throw MetadataError(
                .limitExceeded,
                "transaction of \(conditions.count + mutations.count) operations exceeds \(Limits.metadataTransactionOperationsMax)")
        }
        for condition in conditions {
            switch condition {
            case .absent(let key), .revision(let key, _): try check(key: key)
            }
        }
        var total = 0
        for mutation in mutations {
            switch mutation {
            case .put(let key, let value, _):
                try check(key: key)
                guard value.count <= Limits.metadataValueSizeMax else {
                    throw MetadataError(
                        .limitExceeded, "value of \(ByteCount(value.count)) at \(key) exceeds \(ByteCount(Limits.metadataValueSizeMax))")
                }
                total += value.count
            case .delete(let key): try check(key: key)
            }
        }
        guard total <= Limits.metadataValueSizeMax else {
            throw MetadataError(.limitExceeded, "transaction of \(ByteCount(total)) exceeds \(ByteCount(Limits.metadataValueSizeMax))")
        }
    }
}

/// An error from the metadata store.
public struct MetadataError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
