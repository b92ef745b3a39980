// swift-tools-version: 6.1
//
// Coffre: a geo-replicated, end-to-end encrypted storage cluster.
// Targets form layers (see Docs/architecture.md); a target imports only targets below it.

import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Coffre",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "coffre-bench", targets: ["coffre-bench"]),
        .executable(name: "coffred", targets: ["coffred"]),
        .executable(name: "coffre", targets: ["coffre"]),
        .executable(name: "coffre-fuzz", targets: ["coffre-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.100.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Layer 0: C libraries from Debian, a module map each.
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb"),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium"),
        .systemLibrary(name: "CISAL", pkgConfig: "libisal"),
        // Raw C loops for the benchmark's baselines (Debian's OpenSSL 3.0 and ISA-L).
        .target(
            name: "CBenchBaselines",
            linkerSettings: [.linkedLibrary("crypto"), .linkedLibrary("isal")]
        ),

        // Layer 1: safe Swift wrappers (one C library each) and the model.
        .target(name: "CoffreModel", swiftSettings: strict),
        .target(name: "RocksDB", dependencies: ["CRocksDB", "CoffreModel"], swiftSettings: strict),
        .target(name: "Sodium", dependencies: ["CSodium", "CoffreModel"], swiftSettings: strict),
        .target(name: "ErasureCoding", dependencies: ["CISAL", "CoffreModel"], swiftSettings: strict),
        .target(name: "Checksum", dependencies: ["CISAL"], swiftSettings: strict),
        .target(name: "DirectIO", dependencies: ["CoffreModel"], swiftSettings: strict),
        .target(
            name: "AESGCM",
            dependencies: ["CoffreModel", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),

        // Layer 2: pure logic.
        .target(name: "Placement", dependencies: ["CoffreModel"], swiftSettings: strict),
        .target(
            name: "Encryption",
            dependencies: [
                "AESGCM", "Sodium", "CoffreModel",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        // The transparency log's rules: canonical bytes, the chain, Ed25519 signatures.
        .target(
            name: "Transparency",
            dependencies: ["CoffreModel", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),

        // Layer 3: effects.
        .target(
            name: "ShardStore",
            dependencies: ["RocksDB", "Checksum", "CoffreModel", "DirectIO"],
            swiftSettings: strict
        ),

        .target(
            name: "Metadata",
            dependencies: [
                "RocksDB", "CoffreModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "ClusterTLS",
            dependencies: [
                "CoffreModel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        .target(name: "CoffreAPI", dependencies: ["CoffreModel"], swiftSettings: strict),

        // The daemons' configuration files (YAML), checked without starting anything.
        .target(
            name: "DaemonConfiguration",
            dependencies: ["CoffreModel", "ShardStore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),

        // Layer 4: services.
        // Metrics (swift-metrics, exported for Prometheus), probes and JSON-lines logs.
        .target(
            name: "Telemetry",
            dependencies: [
                "CoffreModel",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "HTTPService",
            dependencies: [
                "CoffreModel", "CoffreAPI", "Telemetry",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "StorageNode",
            dependencies: [
                "ShardStore", "Checksum", "CoffreModel", "CoffreAPI", "ClusterTLS", "DaemonConfiguration", "HTTPService", "DirectIO", "Telemetry",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "NodeClient",
            dependencies: [
                "CoffreModel", "CoffreAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "Coordinator",
            dependencies: [
                "CoffreModel", "CoffreAPI", "Placement", "ErasureCoding", "Checksum", "Metadata", "NodeClient",
                "ClusterTLS", "DaemonConfiguration", "HTTPService", "Telemetry", "Transparency",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The share-link page, compiled into the binary (no files to deploy beside it).
            resources: [.embedInCode("Web/link.html")],
            swiftSettings: strict
        ),

        .target(
            name: "CoffreClient",
            dependencies: [
                "Encryption", "CoffreAPI", "CoffreModel", "ClusterTLS", "Sodium", "DirectIO", "Transparency",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "LocalCluster",
            dependencies: [
                "ClusterTLS", "CoffreClient",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),

        // The decoders that read outside bytes, as fuzz targets (Scripts/fuzz, Docs/testing.md).
        .target(
            name: "FuzzTargets",
            dependencies: ["CoffreModel", "CoffreAPI", "Encryption", "ShardStore", "DaemonConfiguration", "Sodium"],
            swiftSettings: strict
        ),

        // Layer 5: executables.
        .target(name: "CLibFuzzer"),
        .executableTarget(name: "coffre-fuzz", dependencies: ["FuzzTargets", "CLibFuzzer"], swiftSettings: strict),
        .executableTarget(
            name: "coffred",
            dependencies: [
                "StorageNode", "Coordinator", "DaemonConfiguration", "HTTPService", "ClusterTLS", "Telemetry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "coffre",
            dependencies: [
                "CoffreClient", "CoffreAPI", "CoffreModel", "ClusterTLS", "LocalCluster", "Transparency",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "coffre-bench",
            dependencies: [
                "AESGCM", "CBenchBaselines", "Checksum", "CISAL", "CoffreModel", "Encryption", "DirectIO",
                "ErasureCoding", "RocksDB", "ShardStore", "LocalCluster", "CoffreClient", "ClusterTLS", "Metadata", "NodeClient", "CoffreAPI",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // Tests.
        .target(
            name: "TestSupport",
            dependencies: [
                "ClusterTLS", "LocalCluster", "NodeClient", "CoffreAPI", "CoffreModel", "Checksum",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "CoffreModelTests", dependencies: ["CoffreModel"]),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets", "CoffreModel", "TestSupport"]),
        .testTarget(
            name: "AESGCMTests",
            dependencies: ["AESGCM", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(name: "ChecksumTests", dependencies: ["Checksum", "TestSupport"]),
        .testTarget(name: "DirectIOTests", dependencies: ["DirectIO", "TestSupport"]),
        .testTarget(
            name: "HTTPServiceTests",
            dependencies: ["HTTPService", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "TelemetryTests",
            dependencies: [
                "Telemetry", "TestSupport", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .testTarget(name: "SodiumTests", dependencies: ["Sodium", "CoffreModel"]),
        .testTarget(name: "ErasureCodingTests", dependencies: ["ErasureCoding", "CoffreModel", "TestSupport"]),
        .testTarget(name: "RocksDBTests", dependencies: ["RocksDB", "TestSupport"]),
        .testTarget(
            name: "EncryptionTests",
            dependencies: [
                "Encryption", "AESGCM", "Sodium", "CoffreModel", "TestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Vectors"]
        ),
        .testTarget(
            name: "ClusterTLSTests",
            dependencies: ["ClusterTLS", "TestSupport", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(
            name: "StorageNodeTests",
            dependencies: [
                "StorageNode", "NodeClient", "ClusterTLS", "CoffreAPI", "Checksum", "CoffreModel", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "CoordinatorTests",
            dependencies: [
                "Coordinator", "HTTPService", "NodeClient", "Metadata", "Placement", "ClusterTLS", "CoffreModel", "TestSupport", "Checksum",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "CoffreClient", "LocalCluster", "ClusterTLS", "CoffreAPI", "CoffreModel", "Encryption", "Metadata", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "MetadataTests", dependencies: ["Metadata", "CoffreModel", "TestSupport"]),
        .testTarget(name: "PlacementTests", dependencies: ["Placement", "CoffreModel", "TestSupport"]),
        .testTarget(name: "TransparencyTests", dependencies: ["Transparency", "CoffreModel"]),
        .testTarget(name: "ShardStoreTests", dependencies: ["ShardStore", "Checksum", "CoffreModel", "TestSupport"]),
        .testTarget(name: "ArchitectureTests", dependencies: ["TestSupport"]),
    ]
)
