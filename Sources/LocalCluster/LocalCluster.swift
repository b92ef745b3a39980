import ClusterTLS
public import CoffreClient
import Foundation
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Brings a whole cluster up on loopback — certificates, etcd members, storage nodes,
/// coordinators — each process with its data folder and log in one run folder; and down
/// again, by the pids it recorded.
///
/// Used by `coffre admin cluster up|down|status` (behind `Cluster/up`) and by the
/// integration tests, so the tests run the cluster people run.
public struct LocalCluster: Sendable {
    public let topology: ClusterTopologyFile
    /// `<run>/<name>`: everything this cluster writes.
    public let folder: String
    /// Where `coffred` is.
    public let binaries: String

    public init(topology: ClusterTopologyFile, runDirectory: String, binaries: String) {
        self.topology = topology
        // Absolute, since the profile written from it is used from anywhere.
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        }
        self.folder = absolute(runDirectory) + "/" + topology.name
        self.binaries = absolute(binaries)
    }

    /// The cluster whose folder (`<run>/<name>`) `up` wrote: its topology is read from there
    /// (`topology.json`), so a script given only the folder can stop and start its processes.
    public init(folder: String, binaries: String) throws {
        let path = (folder.hasSuffix("/") ? String(folder.dropLast()) : folder)
        let topology: ClusterTopologyFile
        do {
            topology = try ClusterTopologyFile.load(path + "/topology.json")
        } catch {
            throw LocalClusterError("\(path) is not the folder of a local cluster that was brought up (no readable topology.json): \(error)")
        }
        self.init(topology: topology, runDirectory: (path as NSString).deletingLastPathComponent, binaries: binaries)
    }

    struct Pids: Codable {
        var processes: [String: Int32] = [:]
    }

    /// How each process was started, with its port fixed once known, so that `start` brings
    /// it back at the same address (`launch.json` in the run folder).
    struct Launches: Codable {
        struct Launch: Codable {
            var executable: String
            var arguments: [String]
            /// Written by the process once it listens (nodes, coordinators).
            var portFile: String?
        }
        var processes: [String: Launch] = [:]
    }

    var pidsFile: String { folder + "/pids.json" }
    var launchFile: String { folder + "/launch.json" }

    /// Starts everything and waits until every coordinator sees every node; returns the
    /// client profile (also saved when `saveProfile`).
    public func up(saveProfile: Bool = true, log: @Sendable (String) -> Void = { _ in }) async throws -> Profile {
        if let pids = try? loadPids(), pids.processes.values.contains(where: Self.running) {
            throw LocalClusterError("cluster \(topology.name) is already running (see \(pidsFile)); run down first")
        }
        try? FileManager.default.removeItem(atPath: folder)
        for sub in ["certs", "logs", "config", "data"] {
            try FileManager.default.createDirectory(atPath: folder + "/" + sub, withIntermediateDirectories: true)
        }
        try JSONEncoder().encode(topology).write(to: URL(fileURLWithPath: folder + "/topology.json"))
        log("certificates")
        let authority = try CertificateAuthority.create(name: "Coffre \(topology.name) cluster CA")
        try authority.write(to: folder + "/certs")
        try authority.issue(commonName: "coffre \(topology.name)", hosts: ["127.0.0.1", "localhost"]).write(to: folder + "/certs", name: "server")
        var pids = Pids()
        defer { try? savePids(pids) }

        let etcd = try await startEtcd(&pids, log: log)
        // Coordinators first, with no node listed: nodes announce themselves to their cluster
        // listeners (mutual TLS, each node's certificate naming it) and join the membership.
        log("coordinators")
        let token = (0..<24).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! }.map(String.init).joined()
        var coordinators: [Profile.Coordinator] = []
        var announce: [String] = []
        for country in topology.countries {
            let (port, clusterPort) = try await startCoordinator(country: country, etcd: etcd, token: token, authority: authority, pids: &pids)
            coordinators.append(.init(country: country.code, url: "https://127.0.0.1:\(port)"))
            announce.append("https://127.0.0.1:\(clusterPort)")
        }
        log("storage nodes")
        try savePids(pids)
        try await startNodes(announce: announce, authority: authority, pids: &pids)
        try savePids(pids)
        let profile = Profile(name: topology.name, coordinators: coordinators, ca: folder + "/certs/ca.pem", adminToken: token)
        log("waiting for every coordinator to see every node")
        try await waitHealthy(profile)
        if saveProfile { try profile.save() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(profile).write(to: URL(fileURLWithPath: folder + "/profile.json"))
        return profile
    }

    /// Stops exactly the processes `up` started (SIGTERM, then SIGKILL after 10 s).
    public func down() throws -> Int {
        guard let pids = try? loadPids() else { return 0 }
        var stopped = 0
        for pid in pids.processes.values where Self.running(pid) {
            kill(pid, SIGTERM)
            stopped += 1
        }
        let deadline = Date().addingTimeInterval(10)
        for pid in pids.processes.values {
            Self.awaitExit(pid, until: deadline)
            if Self.running(pid) {
                kill(pid, SIGKILL)
                Self.awaitExit(pid, until: Date().addingTimeInterval(5))
            }
        }
        try? FileManager.default.removeItem(atPath: pidsFile)
        return stopped
    }

    /// Each recorded process and whether it runs.
    public func processes() -> [(name: String, pid: Int32, running: Bool)] {
        guard let pids = try? loadPids() else { return [] }
        return pids.processes.sorted { $0.key < $1.key }.map { ($0.key, $0.value, Self.running($0.value)) }
    }

    /// The processes a selector names: `node ID`, every process of a country (its
    /// coordinator, etcd member and nodes), or a country's coordinator.
    public enum Part: Sendable {
        case node(String)
        case country(String)
        case coordinator(String)
    }

    public func names(_ part: Part) throws -> [String] {
        let all = try loadLaunches().processes.keys.sorted()
        let names: [String]
        switch part {
        case .node(let id): names = all.filter { $0 == "node \(id)" }
        case .coordinator(let code): names = all.filter { $0 == "coordinator \(code.uppercased())" }
        case .country(let code):
            let upper = code.uppercased()
            names = all.filter { $0 == "coordinator \(upper)" || $0 == "etcd \(upper)" || $0.hasPrefix("node \(upper.lowercased())-") }
        }
        guard !names.isEmpty else { throw LocalClusterError("no process of \(part) in cluster \(topology.name)") }
        return names
    }

    /// Stops processes (SIGTERM and a wait, or SIGKILL with `kill`); they keep their data,
    /// their address and their entry in pids.json, so `start` brings them back.
    @discardableResult
    public func stop(_ names: [String], kill hard: Bool = false) throws -> [String] {
        let pids = try loadPids()
        var stopped: [String] = []
        for name in names {
            guard let pid = pids.processes[name], Self.running(pid) else { continue }
            kill(pid, hard ? SIGKILL : SIGTERM)
            Self.awaitExit(pid, until: Date().addingTimeInterval(hard ? 5 : 15))
            if Self.running(pid) {
                kill(pid, SIGKILL)
                Self.awaitExit(pid, until: Date().addingTimeInterval(5))
            }
            stopped.append(name)
        }
        return stopped
    }

    /// Starts stopped processes again as they were launched (same ports, same data) and
    /// waits until each listens; pids.json is rewritten.
    @discardableResult
    public func start(_ names: [String]) async throws -> [String] {
        var pids = try loadPids()
        let launches = try loadLaunches()
        var started: [String] = []
        for name in names {
            if let pid = pids.processes[name], Self.running(pid) { continue }
            guard let launch = launches.processes[name] else { throw LocalClusterError("no launch recorded for \(name)") }
            if let portFile = launch.portFile { try? FileManager.default.removeItem(atPath: portFile) }
            try spawn(name, launch.executable, launch.arguments, portFile: launch.portFile, pids: &pids)
            try savePids(pids)
            started.append(name)
        }
        for name in started {
            guard let portFile = launches.processes[name]?.portFile else { continue }
            guard try await waitForFile(portFile) != nil else {
                throw LocalClusterError("\(name) did not start again in 30 s (see \(folder)/logs)")
            }
        }
        return started
    }

    /// Whether a process runs: it exists and is not a zombie (a process this one did not start
    /// — started by an earlier `coffre admin cluster` — cannot be reaped here, so `kill(pid, 0)`
    /// alone would call it running until its parent reaps it).
    static func running(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let end = stat.lastIndex(of: ")"),
            let state = stat[end...].dropFirst(2).first
        else { return true }
        return state != "Z" && state != "X"
    }

    /// Waits until a process has exited (reaping it when it is a child of this one) or the deadline.
    static func awaitExit(_ pid: Int32, until deadline: Date) {
        var status: Int32 = 0
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid || !running(pid) { return }
            usleep(20_000)
        }
    }

    /// Sends a signal to one process (SIGSTOP freezes it, SIGCONT thaws it: for drills and tests).
    public func signal(_ name: String, _ signal: Int32) throws {
        guard let pid = try loadPids().processes[name] else { throw LocalClusterError("no process \(name)") }
        kill(pid, signal)
    }

    /// Kills one process by name (`node de-1`, `coordinator FR`, `etcd CH`): for drills and tests.
    public func kill9(_ name: String) throws {
        guard let pid = try loadPids().processes[name] else { throw LocalClusterError("no process \(name)") }
        kill(pid, SIGKILL)
        Self.awaitExit(pid, until: Date().addingTimeInterval(5))
    }

    // MARK: - Private

    func loadLaunches() throws -> Launches {
        try JSONDecoder().decode(Launches.self, from: Data(contentsOf: URL(fileURLWithPath: launchFile)))
    }

    func saveLaunches(_ launches: Launches) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(launches).write(to: URL(fileURLWithPath: launchFile))
    }

    /// Once a process listens, its port goes into its launch, so a restart reuses it.
    func fixPort(_ name: String, port: String, flag: String = "--port") throws {
        var launches = try loadLaunches()
        guard var launch = launches.processes[name] else { return }
        if let index = launch.arguments.firstIndex(of: flag), index + 1 < launch.arguments.count {
            launch.arguments[index + 1] = port
        } else {
            launch.arguments += [flag, port]
        }
        launches.processes[name] = launch
        try saveLaunches(launches)
    }

    func loadPids() throws -> Pids {
        try JSONDecoder().decode(Pids.self, from: Data(contentsOf: URL(fileURLWithPath: pidsFile)))
    }

    func savePids(_ pids: Pids) throws {
        try JSONEncoder().encode(pids).write(to: URL(fileURLWithPath: pidsFile))
    }

    func spawn(_ name: String, _ executable: String, _ arguments: [String], portFile: String? = nil, pids: inout Pids) throws {
        let logPath = folder + "/logs/" + name.replacingOccurrences(of: " ", with: "-") + ".log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let log = FileHandle(forWritingAtPath: logPath)!
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        pids.processes[name] = process.processIdentifier
        var launches = (try? loadLaunches()) ?? Launches()
        launches.processes[name] = Launches.Launch(executable: executable, arguments: arguments, portFile: portFile)
        try saveLaunches(launches)
    }

    /// Where etcd's own CA and certificates live: members' (server and peer) and coordinators'
    /// (client). A CA of its own, so that no storage node's certificate opens etcd.
    var etcdCerts: String { folder + "/certs/etcd" }

    /// The etcd CA and certificates: one per member (its server and peer identity), one per
    /// coordinator (`client-coordinator-CC`).
    func issueEtcdCertificates() throws {
        let authority = try CertificateAuthority.create(name: "Coffre \(topology.name) etcd CA")
        try authority.write(to: etcdCerts)
        for code in topology.etcdCountries {
            try authority.issue(commonName: "etcd-\(code.lowercased())", hosts: ["127.0.0.1", "localhost"]).write(to: etcdCerts, name: "etcd-\(code.lowercased())")
        }
        for country in topology.countries {
            let id = "coordinator-" + country.code.lowercased()
            try authority.issue(commonName: id, hosts: ["127.0.0.1"]).write(to: etcdCerts, name: "client-" + id)
        }
    }

    func startEtcd(_ pids: inout Pids, log: (String) -> Void) async throws -> [String] {
        guard !topology.etcdCountries.isEmpty else { return [] }
        log("etcd (\(topology.etcdCountries.count) members, TLS with client certificates)")
        try issueEtcdCertificates()
        let count = topology.etcdCountries.count
        let members = topology.etcdCountries.enumerated().map { (index, code) in
            (
                name: "etcd-\(code.lowercased())", client: topology.basePort + 2 * index, peer: topology.basePort + 2 * index + 1,
                metrics: topology.basePort + 2 * count + index, code: code
            )
        }
        let cluster = members.map { "\($0.name)=https://127.0.0.1:\($0.peer)" }.joined(separator: ",")
        for port in members.flatMap({ [$0.client, $0.peer, $0.metrics] }) where !Self.isPortFree(port) {
            throw LocalClusterError("port \(port) for etcd is taken: change base_port in the topology (or run Cluster/down)")
        }
        for member in members {
            try spawn("etcd \(member.code)", "/usr/bin/etcd", [
                "--name", member.name, "--data-dir", folder + "/data/" + member.name,
                "--listen-client-urls", "https://127.0.0.1:\(member.client)", "--advertise-client-urls", "https://127.0.0.1:\(member.client)",
                "--listen-peer-urls", "https://127.0.0.1:\(member.peer)", "--initial-advertise-peer-urls", "https://127.0.0.1:\(member.peer)",
                // Clients and peers alike must show a certificate of etcd's CA.
                "--cert-file", etcdCerts + "/\(member.name).pem", "--key-file", etcdCerts + "/\(member.name)-key.pem",
                "--client-cert-auth", "--trusted-ca-file", etcdCerts + "/ca.pem",
                "--peer-cert-file", etcdCerts + "/\(member.name).pem", "--peer-key-file", etcdCerts + "/\(member.name)-key.pem",
                "--peer-client-cert-auth", "--peer-trusted-ca-file", etcdCerts + "/ca.pem",
                "--initial-cluster", cluster, "--initial-cluster-state", "new", "--initial-cluster-token", "coffre-" + topology.name,
                "--log-level", "error",
                // Prometheus scrapes etcd's own metrics (its backend size against its quota).
                "--listen-metrics-urls", "http://127.0.0.1:\(member.metrics)",
                // Keep an hour of history, not every revision ever (etcd keeps all until
                // compacted), and a backend quota that raises NOSPACE before the disk fills.
                "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h",
                "--quota-backend-bytes", String(topology.etcdQuotaBytes ?? (2 << 30)),
            ], pids: &pids)
        }
        let endpoints = members.map { "https://127.0.0.1:\($0.client)" }
        let deadline = Date().addingTimeInterval(30)
        let client = etcdCerts + "/client-coordinator-" + topology.countries[0].code.lowercased()
        for endpoint in endpoints {
            while !(await httpHealthy(endpoint + "/health", curl: ["--cacert", etcdCerts + "/ca.pem", "--cert", client + ".pem", "--key", client + "-key.pem"])) {
                guard Date() < deadline else { throw LocalClusterError("etcd at \(endpoint) did not become healthy in 30 s (see \(folder)/logs)") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        return endpoints
    }

    func startNodes(announce: [String], authority: CertificateAuthority, pids: inout Pids) async throws {
        var pending: [(String, String)] = []
        for country in topology.countries {
            for n in 1...country.nodes {
                let id = "\(country.code.lowercased())-\(n)"
                pending.append((id, try spawnNode(id: id, country: country.code, region: country.region, capacity: country.capacityBytes, announce: announce, authority: authority, pids: &pids)))
            }
        }
        for (id, portFile) in pending {
            guard let port = try await waitForFile(portFile) else {
                throw LocalClusterError("node \(id) did not start in 30 s (see \(folder)/logs/node-\(id).log)")
            }
            try fixPort("node \(id)", port: port)
            try await fixTelemetryPort("node \(id)", file: folder + "/data/\(id).telemetry-port")
        }
    }

    /// The telemetry listener on a free port, and the topology's log format and level.
    func daemonTelemetryArguments(_ portFile: String) -> [String] {
        ["--telemetry-port", "0", "--telemetry-port-file", portFile, "--log-format", topology.logFormat ?? "text",
         "--log-level", topology.logLevel ?? "warning"]
    }

    /// Fixes a daemon's telemetry port once it listens (so that a restart keeps it), and
    /// writes the scrape targets again.
    func fixTelemetryPort(_ name: String, file: String) async throws {
        guard let port = try await waitForFile(file) else { throw LocalClusterError("\(name) did not open its telemetry listener in 30 s") }
        try fixPort(name, port: port, flag: "--telemetry-port")
        try writeScrapeTargets()
    }

    /// `prometheus-targets.json` in the cluster's folder: every daemon's and etcd member's
    /// metrics address, in Prometheus's `file_sd_configs` format, labelled by job and process
    /// (Docs/metrics.md).
    public func writeScrapeTargets() throws {
        struct Group: Encodable {
            let targets: [String]
            let labels: [String: String]
        }
        var groups: [Group] = []
        for (name, launch) in try loadLaunches().processes.sorted(by: { $0.key < $1.key }) {
            let words = name.split(separator: " ").map(String.init)
            guard words.count == 2 else { continue }
            let job: String
            let address: String
            switch words[0] {
            case "node", "coordinator":
                guard let index = launch.arguments.firstIndex(of: "--telemetry-port"), index + 1 < launch.arguments.count,
                    launch.arguments[index + 1] != "0"
                else { continue }
                job = "coffre-" + words[0]
                address = "127.0.0.1:" + launch.arguments[index + 1]
            case "etcd":
                guard let index = launch.arguments.firstIndex(of: "--listen-metrics-urls"), index + 1 < launch.arguments.count else { continue }
                job = "etcd"
                address = String(launch.arguments[index + 1].dropFirst("http://".count))
            default: continue
            }
            // No `country` target label: the coordinators' metrics carry the nodes' own.
            groups.append(Group(targets: [address], labels: ["job": job, "process": name]))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(groups).write(to: URL(fileURLWithPath: folder + "/prometheus-targets.json"), options: .atomic)
    }

    /// Issues a node its certificate (naming it: `coffre://node/ID`) and starts it, announcing
    /// itself to `announce`; returns its port file.
    func spawnNode(id: String, country: String, region: String, capacity: Int64, announce: [String], authority: CertificateAuthority, pids: inout Pids) throws -> String {
        try authority.issue(commonName: "coffre node \(id)", hosts: ["127.0.0.1", "localhost"], identity: .init(role: .node, id: id))
            .write(to: folder + "/certs", name: "node-\(id)")
        let portFile = folder + "/data/\(id).port"
        try spawn("node \(id)", binaries + "/coffred", [
            "node", "--node", id, "--country", country, "--region", region,
            "--data-directory", folder + "/data/" + id, "--capacity-bytes", String(capacity),
            "--tls-certificate", folder + "/certs/node-\(id).pem", "--tls-key", folder + "/certs/node-\(id)-key.pem",
            "--tls-cluster-ca", folder + "/certs/ca.pem", "--port", "0", "--port-file", portFile,
        ] + daemonTelemetryArguments(folder + "/data/\(id).telemetry-port") + announce.flatMap { ["--announce", $0] }, portFile: portFile, pids: &pids)
        return portFile
    }

    /// The coordinators' cluster listeners, where nodes announce themselves.
    public func clusterListeners() throws -> [String] {
        try loadLaunches().processes.filter { $0.key.hasPrefix("coordinator ") }.compactMap { _, launch -> String? in
            guard let index = launch.arguments.firstIndex(of: "--cluster-port"), index + 1 < launch.arguments.count else { return nil }
            return "https://127.0.0.1:\(launch.arguments[index + 1])"
        }.sorted()
    }

    /// Starts a new storage node in a running cluster: it gets its certificate and announces
    /// itself; no coordinator is restarted or edited.
    public func addNode(id: String, country: String, region: String, capacityBytes: Int64) async throws {
        guard try loadLaunches().processes["node \(id)"] == nil else { throw LocalClusterError("node \(id) exists") }
        let announce = try clusterListeners()
        var pids = try loadPids()
        let portFile = try spawnNode(
            id: id, country: country.uppercased(), region: region, capacity: capacityBytes, announce: announce,
            authority: try CertificateAuthority.load(from: folder + "/certs"), pids: &pids)
        try savePids(pids)
        guard let port = try await waitForFile(portFile) else { throw LocalClusterError("node \(id) did not start in 30 s") }
        try fixPort("node \(id)", port: port)
        try await fixTelemetryPort("node \(id)", file: folder + "/data/\(id).telemetry-port")
    }

    /// The cluster's transparency log key file (certs/transparency.key), made once: a random
    /// 32-byte Ed25519 seed, base64url, readable by the cluster's user only.
    func transparencyKeyFile() throws -> String {
        let path = folder + "/certs/transparency.key"
        if !FileManager.default.fileExists(atPath: path) {
            var generator = SystemRandomNumberGenerator()
            let seed = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Base64url without padding, as `TransparencyLog.seed(keyFile:)` reads it.
            let text = Data(seed).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            guard FileManager.default.createFile(atPath: path, contents: Data((text + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw LocalClusterError("cannot write \(path)")
            }
        }
        return path
    }

    func startCoordinator(
        country: ClusterTopologyFile.CountryEntry, etcd: [String], token: String, authority: CertificateAuthority, pids: inout Pids
    ) async throws -> (port: Int, clusterPort: Int) {
        let id = "coordinator-" + country.code.lowercased()
        let portFile = folder + "/data/\(id).port"
        let clusterPortFile = folder + "/data/\(id).cluster-port"
        try authority.issue(commonName: "coffre \(id)", hosts: ["127.0.0.1", "localhost"], identity: .init(role: .coordinator, id: id))
            .write(to: folder + "/certs", name: id)
        var config: [String: Any] = [
            "id": id, "country": country.code, "region": country.region, "host": "127.0.0.1", "port": 0,
            "tls": ["certificate": folder + "/certs/\(id).pem", "key": folder + "/certs/\(id)-key.pem", "cluster_ca": folder + "/certs/ca.pem"],
            "cluster_port": 0, "cluster_port_file": clusterPortFile,
            "policy": ["k": topology.policy.k, "m": topology.policy.m, "margin": topology.policy.margin ?? 0],
            "segment_size_bytes": topology.segmentSizeBytes ?? 16 << 20,
            "quota_bytes_default": topology.quotaBytesDefault ?? 50_000_000_000,
            "down_after_seconds": topology.downAfterSeconds ?? 6,
            "admin_token": token, "port_file": portFile,
            // One signing key of its own for the transparency log, shared by the coordinators.
            "transparency_key_file": try transparencyKeyFile(),
        ]
        if let lifetime = topology.sessionLifetimeSeconds { config["session_lifetime_seconds"] = lifetime }
        if let seconds = topology.repairAfterSeconds { config["repair_after_seconds"] = seconds }
        if let count = topology.requestsInFlightMax { config["requests_in_flight_max"] = count }
        if let budget = topology.repairBudgetBytesPerSecond { config["repair_budget_bytes_per_second"] = budget }
        if let seconds = topology.leaderLeaseSeconds { config["leader_lease_seconds"] = seconds }
        if let seconds = topology.gcGraceSeconds { config["gc_grace_seconds"] = seconds }
        if let bytes = topology.transferQuotaBytesDefault { config["transfer_quota_bytes_default"] = bytes }
        if let seconds = topology.transferWindowSeconds { config["transfer_window_seconds"] = seconds }
        if let seconds = topology.transferFlushSeconds { config["transfer_flush_seconds"] = seconds }
        if let seconds = topology.binRetentionSeconds { config["bin_retention_seconds"] = seconds }
        if etcd.isEmpty {
            config["metadata_directory"] = folder + "/data/\(id)-metadata"
        } else {
            config["etcd"] = etcd
            config["etcd_tls"] = [
                "certificate": etcdCerts + "/client-\(id).pem", "key": etcdCerts + "/client-\(id)-key.pem", "ca": etcdCerts + "/ca.pem",
            ]
        }
        let file = folder + "/config/\(id).yaml"
        try Yams.dump(object: config).write(toFile: file, atomically: true, encoding: .utf8)
        try spawn(
            "coordinator \(country.code)", binaries + "/coffred",
            ["coordinator", "--config", file] + daemonTelemetryArguments(folder + "/data/\(id).telemetry-port"), portFile: portFile,
            pids: &pids)
        guard let port = try await waitForFile(portFile).flatMap({ Int($0) }),
            let clusterPort = try await waitForFile(clusterPortFile).flatMap({ Int($0) })
        else {
            throw LocalClusterError("coordinator \(country.code) did not start in 30 s (see \(folder)/logs/coordinator-\(country.code).log)")
        }
        try fixPort("coordinator \(country.code)", port: String(port))
        try fixPort("coordinator \(country.code)", port: String(clusterPort), flag: "--cluster-port")
        try await fixTelemetryPort("coordinator \(country.code)", file: folder + "/data/\(id).telemetry-port")
        return (port, clusterPort)
    }

    func waitHealthy(_ profile: Profile) async throws {
        let total = topology.countries.reduce(0) { $0 + $1.nodes }
        for coordinator in profile.coordinators {
            let client = try CoffreClient(profile: profile, coordinator: coordinator.url)
            defer { Task { try? await client.shutdown() } }
            let deadline = Date().addingTimeInterval(30)
            while true {
                if let status = try? await client.adminStatus(), status.nodes.filter(\.up).count == total { break }
                guard Date() < deadline else { throw LocalClusterError("coordinator \(coordinator.country) does not see all \(total) nodes after 30 s") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func waitForFile(_ path: String) async throws -> String? {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty { return text.trimmingCharacters(in: .whitespacesAndNewlines) }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Whether a TCP port on 127.0.0.1 can be bound now.
    public static func isPortFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        // As etcd itself does: a port held only by a socket in TIME_WAIT (after Cluster/down)
        // can be bound again, so it counts as free.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    func httpHealthy(_ url: String, curl options: [String] = []) async -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl", "-sf", "-m", "1"] + options + [url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
