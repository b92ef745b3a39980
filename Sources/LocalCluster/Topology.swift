import Foundation
import Yams

/// A local multi-region cluster to run on one machine (`Cluster/topologies/*.yaml`).
public struct ClusterTopologyFile: Codable, Sendable {
    public struct CountryEntry: Codable, Sendable {
        public var code: String
        public var region: String
        public var nodes: Int
        public var capacityBytes: Int64
        enum CodingKeys: String, CodingKey { case code, region, nodes, capacityBytes = "capacity_bytes" }

        public init(code: String, region: String, nodes: Int, capacityBytes: Int64) {
            self.code = code
            self.region = region
            self.nodes = nodes
            self.capacityBytes = capacityBytes
        }
    }

    public struct PolicyEntry: Codable, Sendable {
        public var k: Int
        public var m: Int
        public var margin: Int?

        public init(k: Int, m: Int, margin: Int?) {
            self.k = k
            self.m = m
            self.margin = margin
        }
    }

    public var name: String
    public var countries: [CountryEntry]
    /// Countries that run an etcd member (3 or 5); empty: embedded metadata on one coordinator.
    public var etcdCountries: [String]
    public var policy: PolicyEntry
    public var segmentSizeBytes: Int?
    public var quotaBytesDefault: Int64?
    /// First port of the block the cluster uses for etcd (2 per member).
    public var basePort: Int
    public var downAfterSeconds: Int?
    public var sessionLifetimeSeconds: Int?
    /// A node down this long has its shards rebuilt elsewhere (the coordinators' default when nil).
    public var repairAfterSeconds: Int?
    public var repairBudgetBytesPerSecond: Int64?
    public var leaderLeaseSeconds: Int?
    public var gcGraceSeconds: Int?
    /// etcd's backend quota (`--quota-backend-bytes`); 2 GiB when nil.
    public var etcdQuotaBytes: Int64?
    /// Requests each coordinator serves at once (`requests_in_flight_max`).
    public var requestsInFlightMax: Int?
    /// The daemons' log format (`text` when nil) and level (`warning` when nil).
    public var logFormat: String?
    public var logLevel: String?
    /// The coordinators' transfer quota settings (their defaults when nil).
    public var transferQuotaBytesDefault: Int64?
    public var transferWindowSeconds: Int?
    public var transferFlushSeconds: Int?
    /// How long the coordinators keep a node in its owner's rubbish bin (30 days when nil).
    public var binRetentionSeconds: Int?

    enum CodingKeys: String, CodingKey {
        case name, countries, etcdCountries = "etcd_countries", policy, segmentSizeBytes = "segment_size_bytes"
        case quotaBytesDefault = "quota_bytes_default", basePort = "base_port", downAfterSeconds = "down_after_seconds"
        case sessionLifetimeSeconds = "session_lifetime_seconds", repairAfterSeconds = "repair_after_seconds"
        case repairBudgetBytesPerSecond = "repair_budget_bytes_per_second", leaderLeaseSeconds = "leader_lease_seconds"
        case gcGraceSeconds = "gc_grace_seconds", etcdQuotaBytes = "etcd_quota_bytes", requestsInFlightMax = "requests_in_flight_max"
        case logFormat = "log_format", logLevel = "log_level"
        case transferQuotaBytesDefault = "transfer_quota_bytes_default", transferWindowSeconds = "transfer_window_seconds"
        case transferFlushSeconds = "transfer_flush_seconds", binRetentionSeconds = "bin_retention_seconds"
    }

    public init(name: String, countries: [CountryEntry], etcdCountries: [String], policy: PolicyEntry, segmentSizeBytes: Int?, quotaBytesDefault: Int64?, basePort: Int, downAfterSeconds: Int?, sessionLifetimeSeconds: Int? = nil,
        repairAfterSeconds: Int? = nil, repairBudgetBytesPerSecond: Int64? = nil, leaderLeaseSeconds: Int? = nil,
        gcGraceSeconds: Int? = nil
    ) {
        self.gcGraceSeconds = gcGraceSeconds
        self.repairAfterSeconds = repairAfterSeconds
        self.repairBudgetBytesPerSecond = repairBudgetBytesPerSecond
        self.leaderLeaseSeconds = leaderLeaseSeconds
        self.name = name
        self.countries = countries
        self.etcdCountries = etcdCountries
        self.policy = policy
        self.segmentSizeBytes = segmentSizeBytes
        self.quotaBytesDefault = quotaBytesDefault
        self.basePort = basePort
        self.downAfterSeconds = downAfterSeconds
        self.sessionLifetimeSeconds = sessionLifetimeSeconds
    }

    public static func load(_ path: String) throws -> ClusterTopologyFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LocalClusterError("cannot read topology \(path)")
        }
        do {
            return try YAMLDecoder().decode(ClusterTopologyFile.self, from: data)
        } catch {
            throw LocalClusterError("topology \(path) is not valid: \(error)")
        }
    }
}

public struct LocalClusterError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
