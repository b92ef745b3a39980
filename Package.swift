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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.100.0"),
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

        // Layer 3: effects.
        .target(
            name: "ShardStore",
            dependencies: ["RocksDB", "Checksum", "CoffreModel"],
            swiftSettings: strict
        ),

        .target(
            name: "Metadata",
            dependencies: [
                "RocksDB", "CoffreModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // Layer 5: executables.
        .executableTarget(
            name: "coffre-bench",
            dependencies: [
                "AESGCM", "CBenchBaselines", "Checksum", "CISAL", "CoffreModel", "Encryption",
                "ErasureCoding", "RocksDB", "ShardStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // Tests.
        .target(name: "TestSupport", swiftSettings: strict),
        .testTarget(name: "CoffreModelTests", dependencies: ["CoffreModel"]),
        .testTarget(
            name: "AESGCMTests",
            dependencies: ["AESGCM", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(name: "ChecksumTests", dependencies: ["Checksum", "TestSupport"]),
        .testTarget(name: "SodiumTests", dependencies: ["Sodium", "CoffreModel"]),
        .testTarget(name: "ErasureCodingTests", dependencies: ["ErasureCoding", "CoffreModel", "TestSupport"]),
        .testTarget(name: "RocksDBTests", dependencies: ["RocksDB", "TestSupport"]),
        .testTarget(
            name: "EncryptionTests",
            dependencies: ["Encryption", "AESGCM", "Sodium", "CoffreModel", "TestSupport"],
            exclude: ["Vectors"]
        ),
        .testTarget(name: "MetadataTests", dependencies: ["Metadata", "CoffreModel", "TestSupport"]),
        .testTarget(name: "PlacementTests", dependencies: ["Placement", "CoffreModel", "TestSupport"]),
        .testTarget(name: "ShardStoreTests", dependencies: ["ShardStore", "Checksum", "CoffreModel", "TestSupport"]),
        .testTarget(name: "ArchitectureTests", dependencies: ["TestSupport"]),
    ]
)
