public import CoffreModel
import Foundation

/// Everything a coordinator needs to start: a YAML file (Docs/configuration.md).
public struct CoordinatorConfiguration: Codable, Sendable {
    public struct TLSFiles: Codable, Sendable {
        /// The coordinator's certificate (PEM): shown to clients, and to nodes as a client.
        public var certificate: String
        public var key: String
        /// The cluster CA (PEM): the only authority trusted for nodes.
        public var clusterCA: String
        enum CodingKeys: String, CodingKey { case certificate, key, clusterCA = "cluster_ca" }
    }

    /// The client certificate a coordinator shows etcd, and the CA it trusts for etcd (a CA
    /// of etcd's own: storage nodes hold no certificate etcd accepts).
    public struct EtcdTLSFiles: Codable, Sendable {
        public var certificate: String
        public var key: String
        public var ca: String
    }

    public struct NodeEntry: Codable, Sendable {
        public var id: String
        public var country: String
        public var region: String
        public var url: String
    }

    public struct PolicyEntry: Codable, Sendable {
        public var k: Int = 6
        public var m: Int = 3
        public var margin: Int = 0
        public var excludedCountries: [String] = []
        enum CodingKeys: String, CodingKey { case k, m, margin, excludedCountries = "excluded_countries" }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            k = try c.decodeIfPresent(Int.self, forKey: .k) ?? 6
            m = try c.decodeIfPresent(Int.self, forKey: .m) ?? 3
            margin = try c.decodeIfPresent(Int.self, forKey: .margin) ?? 0
            excludedCountries = try c.decodeIfPresent([String].self, forKey: .excludedCountries) ?? []
        }
    }

    public var id: String
    public var country: String
    public var region: String
    public var host: String
    public var port: Int
    public var tls: TLSFiles
    /// Embedded metadata folder; used when `etcd` is empty.
    public var metadataDirectory: String?
    /// etcd client URLs; when set, the metadata lives in etcd.
    public var etcd: [String]
    /// For `https://` etcd endpoints.
    public var etcdTLS: EtcdTLSFiles?
    public var nodes: [NodeEntry]
    public var policy: PolicyEntry
    public var segmentSizeBytes: Int
    public var quotaBytesDefault: Int64
    /// Bytes an account's files may serve in `transferWindowSeconds`, until an operator sets
    /// the account's own (Docs/policy.md, "Transfer quotas").
    public var transferQuotaBytesDefault: Int64
    /// The rolling window transfer is counted over (30 buckets of a thirtieth each).
    public var transferWindowSeconds: Int
    /// How often a coordinator adds what it served to the shared counts: the staleness bound.
    public var transferFlushSeconds: Int
    /// How long a node stays in its owner's rubbish bin before the leader purges it.
    public var binRetentionSeconds: Int
    public var downAfterSeconds: Int
    /// A node down for this long has its shards rebuilt elsewhere.
    public var repairAfterSeconds: Int
    /// Repair's budget until an operator sets one at run time.
    public var repairBudgetBytesPerSecond: Int64
    /// The leader's lease: a dead leader is replaced within about this long.
    public var leaderLeaseSeconds: Int
    /// Unreferenced shards younger than this are not collected.
    public var gcGraceSeconds: Int
    /// Bytes per second the scrub schedule has nodes re-read; 0 turns it off.
    public var scrubBudgetBytesPerSecond: Int64
    /// How long a login lasts.
    public var sessionLifetimeSeconds: Int
    /// Bearer token for `/v1/admin/...`: here, or read from `adminTokenFile` by `load`.
    public var adminToken: String
    /// A file holding the admin token (a mounted secret), instead of `admin_token`.
    public var adminTokenFile: String?
    /// A file holding the transparency log's signing key (base64url of a 32-byte Ed25519
    /// seed); nil: the key is derived from the admin token.
    public var transparencyKeyFile: String?
    /// That file's text, read by `load`.
    public var transparencyKey: String?
    /// Public URL clients use (for share links), e.g. "https://127.0.0.1:8443".
    public var publicURL: String?
    public var portFile: String?
    /// The cluster listener (mutual TLS, cluster certificates only) where storage nodes
    /// announce themselves; nil: none, the membership is `nodes` only.
    public var clusterPort: Int?
    public var clusterPortFile: String?
    /// Requests served at once; more are answered 503 at once.
    public var requestsInFlightMax: Int
    /// `/metrics`, `/livez`, `/readyz`; nil: not served.
    public var telemetry: TelemetryConfiguration?
    /// `text` or `json` (one object per line).
    public var logFormat: String
    public var logLevel: String

    enum CodingKeys: String, CodingKey {
        case id, country, region, host, port, tls, metadataDirectory = "metadata_directory", etcd, etcdTLS = "etcd_tls", nodes, policy
        case segmentSizeBytes = "segment_size_bytes", quotaBytesDefault = "quota_bytes_default"
        case transferQuotaBytesDefault = "transfer_quota_bytes_default", transferWindowSeconds = "transfer_window_seconds"
        case transferFlushSeconds = "transfer_flush_seconds", binRetentionSeconds = "bin_retention_seconds"
        case downAfterSeconds = "down_after_seconds", repairAfterSeconds = "repair_after_seconds"
        case repairBudgetBytesPerSecond = "repair_budget_bytes_per_second", leaderLeaseSeconds = "leader_lease_seconds"
        case gcGraceSeconds = "gc_grace_seconds", scrubBudgetBytesPerSecond = "scrub_budget_bytes_per_second"
        case sessionLifetimeSeconds = "session_lifetime_seconds", adminToken = "admin_token", adminTokenFile = "admin_token_file", publicURL = "public_url", portFile = "port_file"
        case transparencyKeyFile = "transparency_key_file"
        case clusterPort = "cluster_port", clusterPortFile = "cluster_port_file", requestsInFlightMax = "requests_in_flight_max"
        case telemetry, logFormat = "log_format", logLevel = "log_level"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        country = try c.decode(String.self, forKey: .country)
        region = try c.decode(String.self, forKey: .region)
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? "127.0.0.1"
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 0
        tls = try c.decode(TLSFiles.self, forKey: .tls)
        metadataDirectory = try c.decodeIfPresent(String.self, forKey: .metadataDirectory)
        etcd = try c.decodeIfPresent([String].self, forKey: .etcd) ?? []
        etcdTLS = try c.decodeIfPresent(EtcdTLSFiles.self, forKey: .etcdTLS)
        nodes = try c.decodeIfPresent([NodeEntry].self, forKey: .nodes) ?? []
        policy = try c.decodeIfPresent(PolicyEntry.self, forKey: .policy) ?? PolicyEntry()
        segmentSizeBytes = try c.decodeIfPresent(Int.self, forKey: .segmentSizeBytes) ?? Limits.segmentSizeDefault
        quotaBytesDefault = try c.decodeIfPresent(Int64.self, forKey: .quotaBytesDefault) ?? 50_000_000_000
        transferQuotaBytesDefault = try c.decodeIfPresent(Int64.self, forKey: .transferQuotaBytesDefault) ?? 1_000_000_000_000
        transferWindowSeconds = try c.decodeIfPresent(Int.self, forKey: .transferWindowSeconds) ?? 30 * 86_400
        transferFlushSeconds = try c.decodeIfPresent(Int.self, forKey: .transferFlushSeconds) ?? 5
        binRetentionSeconds = try c.decodeIfPresent(Int.self, forKey: .binRetentionSeconds) ?? 30 * 86_400
        downAfterSeconds = try c.decodeIfPresent(Int.self, forKey: .downAfterSeconds) ?? 10
        repairAfterSeconds = try c.decodeIfPresent(Int.self, forKey: .repairAfterSeconds) ?? 300
        repairBudgetBytesPerSecond = try c.decodeIfPresent(Int64.self, forKey: .repairBudgetBytesPerSecond) ?? 100_000_000
        leaderLeaseSeconds = try c.decodeIfPresent(Int.self, forKey: .leaderLeaseSeconds) ?? 5
        gcGraceSeconds = try c.decodeIfPresent(Int.self, forKey: .gcGraceSeconds) ?? Int(Limits.collectorGraceSecondsDefault)
        scrubBudgetBytesPerSecond = try c.decodeIfPresent(Int64.self, forKey: .scrubBudgetBytesPerSecond) ?? 20_000_000
        sessionLifetimeSeconds = try c.decodeIfPresent(Int.self, forKey: .sessionLifetimeSeconds) ?? 86_400
        adminToken = try c.decodeIfPresent(String.self, forKey: .adminToken) ?? ""
        adminTokenFile = try c.decodeIfPresent(String.self, forKey: .adminTokenFile)
        transparencyKeyFile = try c.decodeIfPresent(String.self, forKey: .transparencyKeyFile)
        publicURL = try c.decodeIfPresent(String.self, forKey: .publicURL)
        portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        clusterPort = try c.decodeIfPresent(Int.self, forKey: .clusterPort)
        clusterPortFile = try c.decodeIfPresent(String.self, forKey: .clusterPortFile)
        requestsInFlightMax = try c.decodeIfPresent(Int.self, forKey: .requestsInFlightMax) ?? Limits.requestsInFlightMax
        telemetry = try c.decodeIfPresent(TelemetryConfiguration.self, forKey: .telemetry)
        logFormat = try c.decodeIfPresent(String.self, forKey: .logFormat) ?? "text"
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? "info"
    }

    public static func load(file: String) throws(ConfigurationError) -> CoordinatorConfiguration {
        var configuration = try loadYAMLConfiguration(CoordinatorConfiguration.self, file: file)
        if let path = configuration.adminTokenFile {
            guard configuration.adminToken.isEmpty else {
                throw ConfigurationError(file: file, key: "admin_token_file", reason: "set admin_token or admin_token_file, not both")
            }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(file: file, key: "admin_token_file", reason: "cannot read \(path)")
            }
            configuration.adminToken = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let path = configuration.transparencyKeyFile {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(file: file, key: "transparency_key_file", reason: "cannot read \(path)")
            }
            configuration.transparencyKey = text
        }
        try configuration.validate(file: file)
        return configuration
    }

    /// Checks every value; the first bad one is reported. `checkFiles`: whether the files it
    /// names must be readable here.
    public func validate(file: String, checkFiles: Bool = true) throws(ConfigurationError) {
        func fail(_ key: String, _ reason: String) -> ConfigurationError { ConfigurationError(file: file, key: key, reason: reason) }
        do { _ = try Country(country) } catch { throw fail("country", error.message) }
        guard (0...65_535).contains(port) else { throw fail("port", "must be 0...65535, got \(port)") }
        guard !etcd.isEmpty || metadataDirectory != nil else { throw fail("etcd", "set etcd endpoints or metadata_directory") }
        for (i, endpoint) in etcd.enumerated() {
            guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else { throw fail("etcd[\(i)]", "must be an http(s) URL") }
            guard endpoint.hasPrefix("https://") == (etcdTLS != nil) else {
                throw fail("etcd_tls", "https endpoints need etcd_tls (certificate, key, ca), and http ones none")
            }
        }
        if let etcdTLS, checkFiles {
            for (key, path) in [("etcd_tls.certificate", etcdTLS.certificate), ("etcd_tls.key", etcdTLS.key), ("etcd_tls.ca", etcdTLS.ca)]
            where !FileManager.default.isReadableFile(atPath: path) {
                throw fail(key, "cannot read \(path)")
            }
        }
        guard !nodes.isEmpty || clusterPort != nil else {
            throw fail("nodes", "list storage nodes, or set cluster_port so that they can announce themselves")
        }
        if let clusterPort, !(0...65_535).contains(clusterPort) { throw fail("cluster_port", "must be 0...65535, got \(clusterPort)") }
        for (i, node) in nodes.enumerated() {
            do { _ = try NodeID(node.id) } catch { throw fail("nodes[\(i)].id", error.message) }
            do { _ = try Country(node.country) } catch { throw fail("nodes[\(i)].country", error.message) }
            guard node.url.hasPrefix("https://") else { throw fail("nodes[\(i)].url", "must be an https URL") }
        }
        do { _ = try placementPolicy() } catch { throw fail("policy", error.message) }
        guard segmentSizeBytes > 0, segmentSizeBytes <= Limits.segmentSizeMax else {
            throw fail("segment_size_bytes", "must be 1...\(Limits.segmentSizeMax)")
        }
        guard quotaBytesDefault > 0 else { throw fail("quota_bytes_default", "must be positive") }
        guard (0...Limits.accountQuotaBytesMax).contains(transferQuotaBytesDefault) else {
            throw fail("transfer_quota_bytes_default", "must be 0...\(Limits.accountQuotaBytesMax)")
        }
        guard (30...(366 * 86_400)).contains(transferWindowSeconds) else { throw fail("transfer_window_seconds", "must be 30...31622400") }
        guard (1...300).contains(transferFlushSeconds) else { throw fail("transfer_flush_seconds", "must be 1...300") }
        guard (1...(366 * 86_400)).contains(binRetentionSeconds) else { throw fail("bin_retention_seconds", "must be 1...31622400") }
        guard downAfterSeconds >= 1 else { throw fail("down_after_seconds", "must be at least 1") }
        guard (0...(30 * 86_400)).contains(repairAfterSeconds) else { throw fail("repair_after_seconds", "must be 0...2592000") }
        guard repairBudgetBytesPerSecond >= 0 else { throw fail("repair_budget_bytes_per_second", "must be 0 (paused) or more") }
        guard (1...3600).contains(leaderLeaseSeconds) else { throw fail("leader_lease_seconds", "must be 1...3600") }
        guard (1...(30 * 86_400)).contains(gcGraceSeconds) else { throw fail("gc_grace_seconds", "must be 1...2592000") }
        guard scrubBudgetBytesPerSecond >= 0 else { throw fail("scrub_budget_bytes_per_second", "must be 0 (off) or more") }
        guard (1...(30 * 86_400)).contains(sessionLifetimeSeconds) else { throw fail("session_lifetime_seconds", "must be 1...2592000") }
        guard (1...1_000_000).contains(requestsInFlightMax) else { throw fail("requests_in_flight_max", "must be 1...1000000") }
        guard adminToken.utf8.count >= 16 || (adminToken.isEmpty && adminTokenFile != nil && !checkFiles) else {
            throw fail(adminTokenFile == nil ? "admin_token" : "admin_token_file", "the admin token must be at least 16 characters")
        }
        if let text = transparencyKey, !(Base64URL.decode(text.trimmingCharacters(in: .whitespacesAndNewlines))?.count == 32) {
            throw fail("transparency_key_file", "must hold the base64url of a 32-byte Ed25519 seed (coffre admin transparency-key FILE makes one)")
        }
        try telemetry?.validate(fail)
        try LogSettings.validate(format: logFormat, level: logLevel, fail)
        for (key, path) in [("tls.certificate", tls.certificate), ("tls.key", tls.key), ("tls.cluster_ca", tls.clusterCA)] where checkFiles {
            guard FileManager.default.isReadableFile(atPath: path) else { throw fail(key, "cannot read \(path)") }
        }
    }

    /// The policy section as model values.
    public func placementPolicy() throws(ModelError) -> PlacementPolicyValues {
        let erasure = try ErasurePolicy(dataShards: policy.k, parityShards: policy.m)
        var excluded = Set<Country>()
        for code in policy.excludedCountries { excluded.insert(try Country(code)) }
        return PlacementPolicyValues(erasure: erasure, margin: policy.margin, excluded: excluded)
    }
}

/// The erasure scheme, margin and excluded countries a coordinator starts with.
public struct PlacementPolicyValues: Sendable {
    public let erasure: ErasurePolicy
    public let margin: Int
    public let excluded: Set<Country>
}
