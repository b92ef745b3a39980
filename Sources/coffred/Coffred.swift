import ArgumentParser
import ClusterTLS
import DaemonConfiguration
import Foundation
import Logging
import HTTPService
import StorageNode
import Coordinator
import Telemetry

/// `coffred`: Coffre's daemons. `coffred node` runs a storage node.
@main
struct Coffred: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffred",
        abstract: "Coffre daemons: storage nodes and coordinators.",
        subcommands: [Node.self, CoordinatorCommand.self])
}

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a storage node: shards over HTTP/2 with mutual TLS.",
        discussion: "Options come from --config (YAML, see Docs/configuration.md); flags override the file.")

    @Option(help: "YAML configuration file.") var config: String?
    @Option(help: "Node id (a-z 0-9 - _ .).") var node: String?
    @Option(help: "ISO 3166 alpha-2 country code.") var country: String?
    @Option(help: "Region name.") var region: String?
    @Option(help: "Address to listen on.") var host: String?
    @Option(help: "Port to listen on (0: any free port).") var port: Int?
    @Option(help: "Folder of the shard store.") var dataDirectory: String?
    @Option(help: "Bytes offered to the cluster.") var capacityBytes: Int64?
    @Option(help: "synced or buffered.") var durability: String?
    @Option(help: "files or rocksdb-blobs.") var engine: String?
    @Option(help: "Node certificate (PEM).") var tlsCertificate: String?
    @Option(help: "Node private key (PEM).") var tlsKey: String?
    @Option(help: "Cluster CA certificate (PEM).") var tlsClusterCa: String?
    @Option(help: "Write the bound port to this file once listening.") var portFile: String?
    @Option(help: "A coordinator's cluster listener to announce this node to (repeatable).") var announce: [String] = []
    @Option(help: "URL coordinators reach this node at (default https://HOST:PORT).") var advertiseUrl: String?
    @OptionGroup var telemetry: TelemetryOptions
    @Flag(help: "Check the configuration (file, flags, certificate and key) and exit: 0 when usable, 2 with the first problem.")
    var checkConfig = false

    func run() async throws {
        let configuration: StorageNodeConfiguration
        do {
            configuration = try resolve()
            if checkConfig {
                _ = try TLSSetup.server(certificate: configuration.tls.certificate, key: configuration.tls.key, clientCA: configuration.tls.clusterCA)
                try requireIdentity(.init(role: .node, id: configuration.node), in: configuration.tls.certificate)
                print("coffred node: configuration of \(configuration.node) is usable (\(config ?? "flags"))")
                return
            }
        } catch {
            FileHandle.standardError.write(Data("coffred node: invalid configuration: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let logger = TelemetryOptions.bootstrap(label: "coffred.node", format: configuration.logFormat, level: configuration.logLevel)
        let server = try StorageNodeServer(configuration: configuration, logger: logger)
        let text = configuration.logFormat == "text"
        try await server.run { port in
            // In JSON, the log's own line says it (every line of the output is an object).
            guard text else { return }
            print("listening on \(configuration.host):\(port)")
            fflush(nil)
        }
    }

    func resolve() throws -> StorageNodeConfiguration {
        var c: StorageNodeConfiguration
        if let config {
            c = try StorageNodeConfiguration.load(file: config)
        } else {
            func required<T>(_ value: T?, _ flag: String) throws -> T {
                guard let value else { throw ConfigurationError(file: "flags", key: flag, reason: "is required without --config") }
                return value
            }
            c = StorageNodeConfiguration(
                node: try required(node, "--node"), country: try required(country, "--country"),
                region: try required(region, "--region"), dataDirectory: try required(dataDirectory, "--data-directory"),
                capacityBytes: try required(capacityBytes, "--capacity-bytes"),
                tls: .init(
                    certificate: try required(tlsCertificate, "--tls-certificate"), key: try required(tlsKey, "--tls-key"),
                    clusterCA: try required(tlsClusterCa, "--tls-cluster-ca")))
        }
        if let node { c.node = node }
        if let country { c.country = country }
        if let region { c.region = region }
        if let host { c.host = host }
        if let port { c.port = port }
        if let dataDirectory { c.dataDirectory = dataDirectory }
        if let capacityBytes { c.capacityBytes = capacityBytes }
        if let durability { c.durability = durability }
        if let engine { c.engine = engine }
        if let tlsCertificate { c.tls.certificate = tlsCertificate }
        if let tlsKey { c.tls.key = tlsKey }
        if let tlsClusterCa { c.tls.clusterCA = tlsClusterCa }
        if let portFile { c.portFile = portFile }
        if !announce.isEmpty { c.announce = announce }
        if let advertiseUrl { c.advertiseURL = advertiseUrl }
        telemetry.apply(to: &c.telemetry, logFormat: &c.logFormat, logLevel: &c.logLevel)
        try c.validate(file: config ?? "flags")
        return c
    }
}

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run a coordinator: the client API over TLS, in front of the storage nodes.",
        discussion: "Options come from --config (YAML, see Docs/configuration.md); flags override the file.")

    @Option(help: "YAML configuration file (nodes and policy live there).") var config: String
    @Option(help: "Coordinator id.") var id: String?
    @Option(help: "ISO 3166 alpha-2 country code.") var country: String?
    @Option(help: "Region name.") var region: String?
    @Option(help: "Address to listen on.") var host: String?
    @Option(help: "Port to listen on (0: any free port).") var port: Int?
    @Option(help: "etcd client URL (repeatable); replaces the file's list.") var etcd: [String] = []
    @Option(help: "Embedded metadata folder (when there is no etcd).") var metadataDirectory: String?
    @Option(help: "Ciphertext bytes per segment.") var segmentSizeBytes: Int?
    @Option(help: "Quota of new accounts, in bytes.") var quotaBytesDefault: Int64?
    @Option(help: "Seconds without news before a node is down.") var downAfterSeconds: Int?
    @Option(help: "Seconds a node stays down before its shards are rebuilt elsewhere.") var repairAfterSeconds: Int?
    @Option(help: "Repair budget in bytes per second (until changed at run time).") var repairBudgetBytesPerSecond: Int64?
    @Option(help: "Seconds of the leader's lease.") var leaderLeaseSeconds: Int?
    @Option(help: "Seconds before an unreferenced shard is collected.") var gcGraceSeconds: Int?
    @Option(help: "Bytes per second of background scrub (0: off).") var scrubBudgetBytesPerSecond: Int64?
    @Option(help: "Session lifetime in seconds.") var sessionLifetimeSeconds: Int?
    @Option(help: "Bearer token of the admin API.") var adminToken: String?
    @Option(help: "Coordinator certificate (PEM).") var tlsCertificate: String?
    @Option(help: "Coordinator private key (PEM).") var tlsKey: String?
    @Option(help: "Cluster CA certificate (PEM).") var tlsClusterCa: String?
    @Option(help: "Write the bound port to this file once listening.") var portFile: String?
    @Option(help: "Port of the cluster listener where nodes announce themselves (0: any free port).") var clusterPort: Int?
    @Option(help: "Write the cluster listener's port to this file.") var clusterPortFile: String?
    @OptionGroup var telemetry: TelemetryOptions
    @Flag(help: "Check the configuration (file, flags, certificates and keys) and exit: 0 when usable, 2 with the first problem.")
    var checkConfig = false

    func run() async throws {
        var configuration: CoordinatorConfiguration
        do {
            configuration = try CoordinatorConfiguration.load(file: config)
            if let id { configuration.id = id }
            if let country { configuration.country = country }
            if let region { configuration.region = region }
            if let host { configuration.host = host }
            if let port { configuration.port = port }
            if !etcd.isEmpty { configuration.etcd = etcd }
            if let metadataDirectory { configuration.metadataDirectory = metadataDirectory }
            if let segmentSizeBytes { configuration.segmentSizeBytes = segmentSizeBytes }
            if let quotaBytesDefault { configuration.quotaBytesDefault = quotaBytesDefault }
            if let downAfterSeconds { configuration.downAfterSeconds = downAfterSeconds }
            if let repairAfterSeconds { configuration.repairAfterSeconds = repairAfterSeconds }
            if let repairBudgetBytesPerSecond { configuration.repairBudgetBytesPerSecond = repairBudgetBytesPerSecond }
            if let leaderLeaseSeconds { configuration.leaderLeaseSeconds = leaderLeaseSeconds }
            if let gcGraceSeconds { configuration.gcGraceSeconds = gcGraceSeconds }
            if let scrubBudgetBytesPerSecond { configuration.scrubBudgetBytesPerSecond = scrubBudgetBytesPerSecond }
            if let sessionLifetimeSeconds { configuration.sessionLifetimeSeconds = sessionLifetimeSeconds }
            if let adminToken { configuration.adminToken = adminToken }
            if let tlsCertificate { configuration.tls.certificate = tlsCertificate }
            if let tlsKey { configuration.tls.key = tlsKey }
            if let tlsClusterCa { configuration.tls.clusterCA = tlsClusterCa }
            if let portFile { configuration.portFile = portFile }
            if let clusterPort { configuration.clusterPort = clusterPort }
            if let clusterPortFile { configuration.clusterPortFile = clusterPortFile }
            telemetry.apply(to: &configuration.telemetry, logFormat: &configuration.logFormat, logLevel: &configuration.logLevel)
            try configuration.validate(file: config)
            if checkConfig {
                _ = try TLSSetup.server(certificate: configuration.tls.certificate, key: configuration.tls.key, clientCA: nil)
                _ = try TLSSetup.client(ca: configuration.tls.clusterCA, certificate: configuration.tls.certificate, key: configuration.tls.key)
                if let files = configuration.etcdTLS { _ = try TLSSetup.client(ca: files.ca, certificate: files.certificate, key: files.key) }
                try requireIdentity(.init(role: .coordinator, id: configuration.id), in: configuration.tls.certificate)
                print("coffred coordinator: configuration of \(configuration.id) is usable (\(config))")
                return
            }
        } catch {
            FileHandle.standardError.write(Data("coffred coordinator: invalid configuration: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let logger = TelemetryOptions.bootstrap(label: "coffred.coordinator", format: configuration.logFormat, level: configuration.logLevel)
        let server = try CoordinatorServer(configuration: configuration, logger: logger)
        let host = configuration.host
        let text = configuration.logFormat == "text"
        try await server.run { port in
            guard text else { return }
            print("listening on \(host):\(port)")
            fflush(nil)
        }
    }
}

/// The flags of the telemetry listener and the log, over the file's `telemetry`, `log_format`
/// and `log_level`.
struct TelemetryOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info).") var logLevel: String?
    @Option(help: "Log format: text, or json (one object per line).") var logFormat: String?
    @Option(help: "Address of the telemetry listener (/metrics, /livez, /readyz; plain HTTP).") var telemetryHost: String?
    @Option(help: "Port of the telemetry listener (0: any free port); without it or the file's telemetry section, none.")
    var telemetryPort: Int?
    @Option(help: "Write the telemetry listener's port to this file.") var telemetryPortFile: String?

    func apply(to telemetry: inout TelemetryConfiguration?, logFormat format: inout String, logLevel level: inout String) {
        if telemetryHost != nil || telemetryPort != nil || telemetryPortFile != nil {
            var value = telemetry ?? TelemetryConfiguration()
            if let telemetryHost { value.host = telemetryHost }
            if let telemetryPort { value.port = telemetryPort }
            if let telemetryPortFile { value.portFile = telemetryPortFile }
            telemetry = value
        }
        if let logFormat { format = logFormat }
        if let logLevel { level = logLevel }
    }

    /// Sets the process's log format and level (validated before), and gives the daemon's logger.
    static func bootstrap(label: String, format: String, level: String) -> Logger {
        let level = Logger.Level(rawValue: level) ?? .info
        bootstrapLogging(format: LogFormat(rawValue: format) ?? .text, level: level)
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}

/// `--check-config`: the certificate must name the daemon it is given to (`coffre://ROLE/ID`),
/// or nodes and coordinators will refuse it at run time.
func requireIdentity(_ expected: ClusterIdentity, in certificate: String) throws {
    let named = ClusterIdentity.of(certificateFile: certificate)
    guard named == expected else {
        throw ConfigurationError(
            file: certificate, key: "tls.certificate",
            reason: "names \(named.map(\.uri) ?? "no cluster identity"), not \(expected.uri) (coffre admin certs --issue \(expected.role.rawValue)/\(expected.id)=HOSTS)")
    }
}
