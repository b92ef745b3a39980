import ClusterTLS
import Foundation

/// Certificates for one test: a cluster CA, nodes, a coordinator (each naming its role), one
/// of the CA naming no role, and an outsider from another CA.
public struct TestPKI: Sendable {
    public let folder: String

    public init(folder: String) throws {
        self.folder = folder
        let authority = try CertificateAuthority.create()
        try authority.write(to: folder)
        try authority.issue(commonName: "storage node", hosts: ["127.0.0.1", "localhost"], identity: .init(role: .node, id: "test-node"))
            .write(to: folder, name: "node")
        try authority.issue(commonName: "coordinator", hosts: ["127.0.0.1", "localhost"], identity: .init(role: .coordinator, id: "test-coordinator"))
            .write(to: folder, name: "coordinator")
        // The cluster's CA, but no identity: refused by nodes like a node's own certificate.
        try authority.issue(commonName: "anonymous", hosts: ["127.0.0.1"]).write(to: folder, name: "anonymous")
        let outsider = try CertificateAuthority.create(name: "Not the cluster")
        try outsider.issue(commonName: "intruder", hosts: ["127.0.0.1"]).write(to: folder, name: "intruder")
    }

    public var ca: String { folder + "/ca.pem" }
    public func certificate(_ name: String) -> String { folder + "/\(name).pem" }
    public func key(_ name: String) -> String { folder + "/\(name)-key.pem" }
}

/// A real `coffred node` process on loopback.
public struct NodeProcess: Sendable {
    public let id: String
    public let country: String
    public let region: String
    public let process: ChildProcess
    public let base: String

    /// Starts a node whose data lives in `folder/<id>`; restarting with the same id reuses it.
    public static func start(
        id: String = "fr-1", country: String = "FR", region: String = "fr-paris", folder: String, pki: TestPKI,
        capacity: Int64 = 1 << 30, extra: [String] = [], certificate: String = "node", ca: String? = nil
    ) async throws -> NodeProcess {
        let portFile = folder + "/\(id)-port-\(UUID().uuidString)"
        let process = try ChildProcess(
            executable: builtExecutable("coffred"),
            arguments: [
                "node", "--node", id, "--country", country, "--region", region,
                "--data-directory", folder + "/" + id, "--capacity-bytes", String(capacity),
                "--tls-certificate", pki.certificate(certificate), "--tls-key", pki.key(certificate), "--tls-cluster-ca", ca ?? pki.ca,
                "--port", "0", "--port-file", portFile, "--log-level", "warning",
            ] + extra,
            logPath: folder + "/\(id)-\(UUID().uuidString).log")
        guard let port = try await awaitFile(portFile) else {
            process.kill9()
            throw NodeStartError(log: process.log)
        }
        return NodeProcess(id: id, country: country, region: region, process: process, base: "https://127.0.0.1:\(port)")
    }

    /// Starts `perCountry` nodes in each country at once: ids `<cc>-<n>`, regions `<cc>-r<n % 2>`.
    public static func startMany(countries: [String], perCountry: Int, folder: String, pki: TestPKI) async throws -> [NodeProcess] {
        try await withThrowingTaskGroup(of: NodeProcess.self) { group in
            for country in countries {
                for n in 1...perCountry {
                    let code = country.lowercased()
                    group.addTask {
                        try await start(id: "\(code)-\(n)", country: country, region: "\(code)-r\(n % 2)", folder: folder, pki: pki)
                    }
                }
            }
            var nodes: [NodeProcess] = []
            for try await node in group { nodes.append(node) }
            return nodes.sorted { $0.id < $1.id }
        }
    }
}

public struct NodeStartError: Error, CustomStringConvertible {
    public let log: String
    public var description: String { "coffred node did not start: \(log)" }
}
