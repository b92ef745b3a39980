import Foundation
import Testing
import TestSupport

/// The layering rules of Docs/architecture.md, checked on the sources' import lines.
@Suite struct LayeringTests {
    /// Which modules each target may import (besides the standard library, Foundation,
    /// Synchronization and the platform C library).
    static let allowed: [String: Set<String>] = [
        "CoffreModel": [],
        "RocksDB": ["CRocksDB", "CoffreModel"],
        "Sodium": ["CSodium", "CoffreModel"],
        "ErasureCoding": ["CISAL", "CoffreModel"],
        "Checksum": ["CISAL"],
        "DirectIO": ["CoffreModel"],
        "AESGCM": ["CCryptoBoringSSL", "CoffreModel"],
        "Encryption": ["AESGCM", "Sodium", "CoffreModel", "Crypto"],
        "ShardStore": ["RocksDB", "Checksum", "CoffreModel", "DirectIO"],
        "Placement": ["CoffreModel"],
        "Transparency": ["CoffreModel", "Crypto"],
        "CoffreAPI": ["CoffreModel"],
        "DaemonConfiguration": ["CoffreModel", "ShardStore", "Yams"],
        "FuzzTargets": ["CoffreAPI", "CoffreModel", "DaemonConfiguration", "Encryption", "ShardStore", "Sodium"],
        "LocalCluster": ["ClusterTLS", "CoffreClient", "Yams", "Glibc"],
        "CoffreClient": ["Encryption", "CoffreAPI", "CoffreModel", "ClusterTLS", "Sodium", "DirectIO", "Transparency", "AsyncHTTPClient", "NIOCore", "NIOHTTP1"],
        "Telemetry": ["CoffreModel", "Metrics", "CoreMetrics", "Prometheus", "Logging"],
        "HTTPService": ["CoffreModel", "CoffreAPI", "Telemetry", "Metrics", "Hummingbird", "HummingbirdCore", "HummingbirdHTTP2", "HTTPTypes", "NIOCore", "NIOHTTP1", "NIOHTTPTypes", "NIOSSL", "NIOTLS", "Logging"],
        "Coordinator": [
            "CoffreModel", "CoffreAPI", "Placement", "ErasureCoding", "Checksum", "Metadata", "NodeClient", "NIOCore",
            "ClusterTLS", "DaemonConfiguration", "HTTPService", "Hummingbird", "HummingbirdHTTP2", "HTTPTypes", "Logging", "Crypto",
            "ServiceLifecycle", "NIOSSL", "Telemetry", "Transparency",
        ],
        "NodeClient": ["CoffreModel", "CoffreAPI", "AsyncHTTPClient", "NIOCore", "NIOHTTP1", "NIOSSL"],
        "StorageNode": [
            "ShardStore", "Checksum", "CoffreModel", "CoffreAPI", "ClusterTLS", "DaemonConfiguration", "HTTPService", "DirectIO", "Hummingbird",
            "HummingbirdHTTP2", "HTTPTypes", "NIOCore", "NIOPosix", "NIOSSL", "Logging", "AsyncHTTPClient", "ServiceLifecycle", "Telemetry",
        ],
        "ClusterTLS": ["CoffreModel", "Crypto", "X509", "SwiftASN1", "NIOSSL", "NIOCore"],
        "Metadata": ["RocksDB", "CoffreModel", "AsyncHTTPClient", "NIOCore", "NIOSSL"],
        "TestSupport": ["ClusterTLS", "LocalCluster", "NodeClient", "CoffreAPI", "CoffreModel", "Checksum", "NIOCore"],
    ]
    static let alwaysAllowed: Set<String> = ["Foundation", "Synchronization", "Glibc", "Darwin", "Dispatch"]

    static func imports(of target: String) throws -> Set<String> {
        let folder = repositoryRoot + "/Sources/" + target
        var found = Set<String>()
        for file in try FileManager.default.contentsOfDirectory(atPath: folder) where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init)
                guard let index = words.firstIndex(of: "import"), index <= 2,
                    words[..<index].allSatisfy({ ["public", "internal", "@testable", "@_implementationOnly", "package"].contains($0) }),
                    index + 1 < words.count
                else { continue }
                found.insert(words[index + 1])
            }
        }
        return found
    }

    @Test(arguments: Array(allowed.keys).sorted())
    func targetImportsOnlyLayersBelowIt(target: String) throws {
        let extra = try Self.imports(of: target).subtracting(Self.allowed[target]!).subtracting(Self.alwaysAllowed)
        #expect(extra.isEmpty, "\(target) imports \(extra.sorted()), which its layer may not")
    }

    @Test func everyLibraryTargetHasARule() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/Sources")
            .filter { folder in
                // C targets (a module map or an include folder) and executables have no rule.
                let path = repositoryRoot + "/Sources/" + folder
                return !FileManager.default.fileExists(atPath: path + "/module.modulemap")
                    && !FileManager.default.fileExists(atPath: path + "/include") && !folder.hasPrefix("coffre")
            }
        #expect(Set(folders) == Set(Self.allowed.keys), "add new targets to the layering table")
    }

    @Test func onlyAESGCMTouchesBoringSSL() throws {
        for target in Self.allowed.keys where target != "AESGCM" {
            #expect(!(try Self.imports(of: target)).contains("CCryptoBoringSSL"), "\(target)")
        }
    }
}
