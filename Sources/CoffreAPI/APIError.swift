public import CoffreModel

/// The JSON body of every error answer, from nodes and coordinators alike:
/// `{"error": {"code": "not_found", "message": "no shard ab/3"}}`.
///
/// `code` is stable (scripts match on it); `message` is for people and may change.
public struct APIErrorBody: Codable, Hashable, Sendable {
    public struct Detail: Codable, Hashable, Sendable {
        public let code: String
        public let message: String
        /// The notice behind `link_taken_down` and `file_taken_down` (absent otherwise).
        public let takedown: TakedownNotice?
    }

    public let error: Detail

    public init(code: ErrorCode, message: String, takedown: TakedownNotice? = nil) {
        error = Detail(code: code.rawValue, message: message, takedown: takedown)
    }

    /// The HTTP status for a code: one table for the whole API (Docs/api.md).
    public static func status(for code: ErrorCode) -> Int {
        switch code {
        case .invalidArgument, .weakParameters, .badRequest, .unsupportedVersion, .passwordRequired: 400
        case .unauthenticated: 401
        case .forbidden, .accountSuspended: 403
        case .notFound: 404
        case .conflict, .nameTaken, .keyChanging, .keyChanged: 409
        case .timeout: 408
        case .drillRefused: 412
        case .linkTakenDown, .fileTakenDown: 451
        case .limitExceeded: 413
        case .rangeNotSatisfiable: 416
        case .rateLimited, .transferQuotaExceeded: 429
        case .checksumMismatch: 422
        case .quotaExceeded, .metadataFull, .nodeFull: 507
        case .unavailable, .insufficientNodes: 503
        default: 500
        }
    }
}

/// Header and path names of the storage node API (Docs/api.md, "Storage node").
public enum NodeAPI {
    /// CRC-32C of a shard body, 8 lower-case hex digits.
    public static let checksumHeader = "x-coffre-crc32c"
    /// Shards live under this path; the key is hex-encoded: `/v1/shards/<hex key>`.
    public static let shardsPath = "/v1/shards"
    public static let healthPath = "/v1/health"
    public static let scrubPath = "/v1/scrub"
    /// Query parameter of a conditional shard delete: the record's creation time (ms).
    public static let createdAtParameter = "created-at"

    public static func checksumText(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    public static func parseChecksum(_ text: String) -> UInt32? {
        guard text.utf8.count == 8 else { return nil }
        return UInt32(text, radix: 16)
    }
}

/// A storage node's report of itself.
/// What a daemon's connection guard and request limit have counted since it started.
public struct ConnectionStats: Codable, Hashable, Sendable {
    /// Connections held now, and closed at once for being over a connection limit.
    public var open: Int
    public var refused: Int
    /// Connections cut off for sending their headers, or their body, too slowly.
    public var slowHeaders: Int
    public var slowBodies: Int
    /// Requests being served now, the most served at once, and those answered 503 for it.
    public var requestsInFlight: Int
    public var requestsInFlightMax: Int
    public var shed: Int
    /// TCP connections held now (before TLS; an HTTP/2 connection counts once, its streams in
    /// `open`), and those closed for not finishing their TLS handshake in time.
    public var transports: Int
    public var slowHandshakes: Int

    public init(
        open: Int, refused: Int, slowHeaders: Int, slowBodies: Int, requestsInFlight: Int, requestsInFlightMax: Int, shed: Int,
        transports: Int, slowHandshakes: Int
    ) {
        self.transports = transports
        self.slowHandshakes = slowHandshakes
        self.open = open
        self.refused = refused
        self.slowHeaders = slowHeaders
        self.slowBodies = slowBodies
        self.requestsInFlight = requestsInFlight
        self.requestsInFlightMax = requestsInFlightMax
        self.shed = shed
    }
}

public struct NodeHealth: Codable, Hashable, Sendable {
    public let node: String
    public let country: String
    public let region: String
    public let capacityBytes: Int64
    public let usedBytes: Int64
    public let shardCount: Int
    public let status: String
    /// The shard store's incarnation: new when its disk was replaced or wiped (absent from
    /// nodes older than it).
    public let incarnation: String?
    /// The node's connection and request counters (absent from older nodes).
    public var connections: ConnectionStats?

    public init(
        node: String, country: String, region: String, capacityBytes: Int64, usedBytes: Int64, shardCount: Int, status: String,
        incarnation: String? = nil, connections: ConnectionStats? = nil
    ) {
        self.connections = connections
        self.node = node
        self.country = country
        self.region = region
        self.capacityBytes = capacityBytes
        self.usedBytes = usedBytes
        self.shardCount = shardCount
        self.status = status
        self.incarnation = incarnation
    }
}

/// One shard in a node's listing.
public struct ShardInfo: Codable, Hashable, Sendable {
    /// Hex-encoded key.
    public let key: String
    public let length: Int64
    /// 8 hex digits.
    public let checksum: String
    /// Milliseconds since 1970.
    public let createdAt: Int64

    public init(key: String, length: Int64, checksum: String, createdAt: Int64) {
        self.key = key
        self.length = length
        self.checksum = checksum
        self.createdAt = createdAt
    }
}

/// A page of a node's listing; `next` is the cursor for the following page.
public struct ShardPage: Codable, Hashable, Sendable {
    public let shards: [ShardInfo]
    public let next: String?

    public init(shards: [ShardInfo], next: String?) {
        self.shards = shards
        self.next = next
    }
}

/// One step of a node's scrub.
public struct ScrubStep: Codable, Hashable, Sendable {
    public struct Finding: Codable, Hashable, Sendable {
        public let key: String
        public let reason: String
        public init(key: String, reason: String) {
            self.key = key
            self.reason = reason
        }
    }

    public let scanned: Int
    public let bytesVerified: Int
    public let corrupt: [Finding]
    public let next: String?

    public init(scanned: Int, bytesVerified: Int, corrupt: [Finding], next: String?) {
        self.scanned = scanned
        self.bytesVerified = bytesVerified
        self.corrupt = corrupt
        self.next = next
    }
}
