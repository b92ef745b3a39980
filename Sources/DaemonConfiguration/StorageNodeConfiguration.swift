import CoffreModel
import Foundation
import ShardStore

/// Everything a storage node needs to start; a YAML file, every key also a flag of
/// `coffred node` (Docs/configuration.md).
public struct StorageNodeConfiguration: Codable, Sendable, Equatable {
    public struct TLSFiles: Codable, Sendable, Equatable {
        /// The node's certificate (PEM), signed by the cluster CA.
        public var certificate: String
        /// Its private key (PEM).
        public var key: String
        /// The cluster CA (PEM): clients must present a certificate it signed.
        public var clusterCA: String

        public init(certificate: String, key: String, clusterCA: String) {
            self.certificate = certificate
            self.key = key
            self.clusterCA = clusterCA
        }
    }

    /// Node id: 1...64 of a-z 0-9 - _ .
    public var node: String
    /// ISO 3166 alpha-2 code.
    public var country: String
    public var region: String
    /// Address to listen on.
    public var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks a free port (it is printed and written to `portFile`).
    public var port: Int = 0
    /// Where the shard store lives.
    public var dataDirectory: String
    /// Bytes this node offers to the cluster.
    public var capacityBytes: Int64
    /// `synced` (default) or `buffered`.
    public var durability: String = "synced"
    /// `files` (default) or `rocksdb-blobs`.
    public var engine: String = "files"
    public var tls: TLSFiles
    /// If set, the bound port is written there once the node listens.
    public var portFile: String?
    /// Coordinators' cluster listeners (`https://HOST:PORT`) to announce this node to, so
    /// that it joins the cluster with no coordinator restarted or edited.
    public var announce: [String] = []
    /// Where coordinators reach this node; `https://HOST:PORT` of the listener when nil.
    public var advertiseURL: String?
    /// `/metrics`, `/livez`, `/readyz`; nil: not served.
    public var telemetry: TelemetryConfiguration?
    /// `text` or `json` (one object per line).
    public var logFormat: String = "text"
    public var logLevel: String = "info"

    public init(node: String, country: String, region: String, dataDirectory: String, capacityBytes: Int64, tls: TLSFiles) {
        self.node = node
        self.country = country
        self.region = region
        self.dataDirectory = dataDirectory
        self.capacityBytes = capacityBytes
        self.tls = tls
    }

    enum CodingKeys: String, CodingKey {
        case node, country, region, host, port, dataDirectory = "data_directory", capacityBytes = "capacity_bytes"
        case durability, engine, tls, portFile = "port_file", announce, advertiseURL = "advertise_url"
        case telemetry, logFormat = "log_format", logLevel = "log_level"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        node = try c.decode(String.self, forKey: .node)
        country = try c.decode(String.self, forKey: .country)
        region = try c.decode(String.self, forKey: .region)
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? "127.0.0.1"
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 0
        dataDirectory = try c.decode(String.self, forKey: .dataDirectory)
        capacityBytes = try c.decode(Int64.self, forKey: .capacityBytes)
        durability = try c.decodeIfPresent(String.self, forKey: .durability) ?? "synced"
        engine = try c.decodeIfPresent(String.self, forKey: .engine) ?? "files"
        tls = try c.decode(TLSFiles.self, forKey: .tls)
        portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        announce = try c.decodeIfPresent([String].self, forKey: .announce) ?? []
        advertiseURL = try c.decodeIfPresent(String.self, forKey: .advertiseURL)
        telemetry = try c.decodeIfPresent(TelemetryConfiguration.self, forKey: .telemetry)
        logFormat = try c.decodeIfPresent(String.self, forKey: .logFormat) ?? "text"
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? "info"
    }

    /// Reads and checks a YAML file; errors name the file, the key and the reason.
    public static func load(file: String) throws(ConfigurationError) -> StorageNodeConfiguration {
        let configuration = try loadYAMLConfiguration(StorageNodeConfiguration.self, file: file)
        try configuration.validate(file: file)
        return configuration
    }

    /// Checks every value; the first bad one is reported.
    public func validate(file: String = "flags", checkFiles: Bool = true) throws(ConfigurationError) {
        func fail(_ key: String, _ reason: String) -> ConfigurationError { ConfigurationError(file: file, key: key, reason: reason) }
        do { _ = try NodeID(node) } catch { throw fail("node", error.message) }
        do { _ = try Country(country) } catch { throw fail("country", error.message) }
        guard !region.isEmpty, region.utf8.count <= 64 else { throw fail("region", "must be 1...64 characters") }
        guard (0...65_535).contains(port) else { throw fail("port", "must be 0...65535, got \(port)") }
        guard !dataDirectory.isEmpty else { throw fail("data_directory", "must not be empty") }
        guard capacityBytes > 0 else { throw fail("capacity_bytes", "must be positive, got \(capacityBytes)") }
        for (i, url) in announce.enumerated() where !url.hasPrefix("https://") { throw fail("announce[\(i)]", "must be an https URL, got \(url)") }
        if let advertiseURL, !advertiseURL.hasPrefix("https://") { throw fail("advertise_url", "must be an https URL, got \(advertiseURL)") }
        guard ShardStore.Durability(rawValue: durability) != nil else { throw fail("durability", "must be synced or buffered, got \(durability)") }
        guard ShardStoreEngine(rawValue: engine) != nil else { throw fail("engine", "must be files or rocksdb-blobs, got \(engine)") }
        try telemetry?.validate(fail)
        try LogSettings.validate(format: logFormat, level: logLevel, fail)
        for (key, path) in [("tls.certificate", tls.certificate), ("tls.key", tls.key), ("tls.cluster_ca", tls.clusterCA)] where checkFiles {
            guard FileManager.default.isReadableFile(atPath: path) else { throw fail(key, "cannot read \(path)") }
        }
    }
}

extension StorageNodeConfiguration.TLSFiles {
    enum CodingKeys: String, CodingKey { case certificate, key, clusterCA = "cluster_ca" }
}

