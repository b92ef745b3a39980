import CoffreAPI
import CoffreModel
import DaemonConfiguration
import Encryption
import Foundation
import ShardStore
import Sodium

/// The decoders that read bytes from outside a process, one fuzz target each.
///
/// `run` must never trap on any input: a decoder refuses what it cannot use with its error.
/// Where a decoder also has an encoder, a decoded value must encode and decode back to itself
/// (a `precondition`, so that libFuzzer reports it as a crash). `coffre-fuzz` runs a target
/// under libFuzzer (`Scripts/fuzz`); the unit tests replay the committed corpus
/// (`Tests/Fuzz/Corpus/TARGET/`) without instrumentation.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The file format (Docs/format.md): header, chunk framing, the streaming and in-memory
    /// decryptors, which must agree.
    case fileFormat = "file-format"
    /// Account key records (JSON) with their Argon2id parameters, and recovery keys.
    case keyRecord = "key-record"
    /// Wrapped keys and user shares (HPKE, signed).
    case keyWrap = "key-wrap"
    /// Node attribute blobs (sealed JSON) and the attributes' JSON itself.
    case attributes
    /// Object manifests as the metadata store holds them.
    case manifest
    /// Other records of the metadata store: tree nodes, links, drills, jobs, policies, countries.
    case metadataRecord = "metadata-record"
    /// The shard store's 24-byte records and shard keys.
    case shardRecord = "shard-record"
    /// The daemons' YAML configuration files.
    case configuration
    /// Share link URLs.
    case shareLink = "share-link"
    /// JSON request bodies of the coordinator's API.
    case apiRequest = "api-request"

    /// Runs one input through the target's decoders; true when it was accepted whole (used
    /// to check that the committed seeds still reach past the first check).
    @discardableResult
    public func run(_ bytes: [UInt8]) -> Bool {
        switch self {
        case .fileFormat: FileFormatFuzz.run(bytes)
        case .keyRecord: KeyRecordFuzz.run(bytes)
        case .keyWrap: KeyWrapFuzz.run(bytes)
        case .attributes: AttributesFuzz.run(bytes)
        case .manifest: ManifestFuzz.run(bytes)
        case .metadataRecord: RecordFuzz.run(bytes, kinds: RecordFuzz.metadataKinds)
        case .shardRecord: ShardRecordFuzz.run(bytes)
        case .configuration: ConfigurationFuzz.run(bytes)
        case .shareLink: ShareLinkFuzz.run(bytes)
        case .apiRequest: RecordFuzz.run(bytes, kinds: RecordFuzz.requestKinds)
        }
    }

    /// Valid inputs to start the fuzzer from (written to the corpus by `coffre-fuzz seeds`).
    public func seeds() -> [[UInt8]] {
        switch self {
        case .fileFormat: FileFormatFuzz.seeds()
        case .keyRecord: KeyRecordFuzz.seeds()
        case .keyWrap: KeyWrapFuzz.seeds()
        case .attributes: AttributesFuzz.seeds()
        case .manifest: ManifestFuzz.seeds()
        case .metadataRecord: RecordFuzz.seeds(kinds: RecordFuzz.metadataKinds)
        case .shardRecord: ShardRecordFuzz.seeds()
        case .configuration: ConfigurationFuzz.seeds()
        case .shareLink: ShareLinkFuzz.seeds()
        case .apiRequest: RecordFuzz.seeds(kinds: RecordFuzz.requestKinds)
        }
    }
}

/// Fixed keys: the fuzzer's inputs are sealed under these, so that valid seeds open.
enum FuzzKeys {
    static let secret = try! SecretKey(bytes: [UInt8](repeating: 0x42, count: 32))
    static let fileKey = try! FileKey(bytes: [UInt8](repeating: 0x24, count: 32))
    static let alice = Identity(masterKey: try! SecretKey(bytes: [UInt8](repeating: 0xA1, count: 32)))
    static let bob = Identity(masterKey: try! SecretKey(bytes: [UInt8](repeating: 0xB0, count: 32)))
    static let context = WrapContext(type: "fuzz", owner: "owner", subject: "subject")
}

/// Splits an input into a selector (its first byte) and the rest.
func select(_ bytes: [UInt8], among count: Int) -> (Int, [UInt8])? {
    guard let first = bytes.first else { return nil }
    return (Int(first) % count, Array(bytes.dropFirst()))
}

/// JSON encoding with sorted keys, as the coordinator writes records.
func encodeJSON(_ value: some Encodable) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return Array(try! encoder.encode(value))
}

/// Decodes `bytes` as `T`; when it decodes, its encoding must decode to the same value.
func decodeRoundTrip<T: Codable & Equatable>(_ type: T.Type, _ bytes: [UInt8]) -> T? {
    guard let value = try? JSONDecoder().decode(T.self, from: Data(bytes)) else { return nil }
    let again = try? JSONDecoder().decode(T.self, from: Data(encodeJSON(value)))
    precondition(again == value, "\(T.self) does not survive encoding and decoding")
    return value
}

enum FileFormatFuzz {
    static func run(_ bytes: [UInt8]) -> Bool {
        let whole = try? FileDecryptor.decrypt(bytes, fileKey: FuzzKeys.fileKey)
        // The streaming decryptor, fed in pieces whose size the input chooses.
        let piece = max(1, Int(bytes.last ?? 1) * 97)
        var offset = 0
        var streamed = [UInt8]()
        let ok: Bool
        do {
            try FileDecryptor.decrypt(
                fileKey: FuzzKeys.fileKey,
                read: { buffer in
                    let count = min(buffer.count, piece, bytes.count - offset)
                    buffer.copyBytes(from: bytes[offset..<(offset + count)])
                    offset += count
                    return count
                },
                write: { streamed += $0 })
            ok = true
        } catch { ok = false }
        precondition((whole != nil) == ok, "the streaming and in-memory decryptors disagree on accepting the input")
        if let whole { precondition(whole == streamed, "the streaming and in-memory decryptors disagree on the plaintext") }
        return ok
    }

    static func seeds() -> [[UInt8]] {
        [0, 1, 100, FileFormat.chunkSize - 1, FileFormat.chunkSize, FileFormat.chunkSize * 2 + 5].map { count in
            let plaintext = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            return try! FileEncryptor.encrypt(plaintext, fileKey: FuzzKeys.fileKey)
        }
    }
}

enum KeyRecordFuzz {
    static func run(_ bytes: [UInt8]) -> Bool {
        guard let (kind, payload) = select(bytes, among: 2) else { return false }
        if kind == 1 {
            guard let key = try? RecoveryKey(printable: String(decoding: payload, as: UTF8.self)) else { return false }
            precondition((try? RecoveryKey(printable: key.printable)) == key, "a recovery key does not survive printing")
            return true
        }
        guard let record = decodeRoundTrip(AccountKeyRecord.self, payload) else { return false }
        guard (try? record.passwordParameters.validate()) != nil else { return false }
        // No Argon2id here (it is slow by design); the recovery path opens a wrapped key.
        _ = try? AccountKeys.recover(record, recoveryKey: RecoveryKey(key: FuzzKeys.secret))
        return true
    }

    static func seeds() -> [[UInt8]] {
        let creation = try! AccountKeys.create(accountId: "acct-fuzz", password: "correct horse", parameters: .minimum)
        return [[0] + encodeJSON(creation.record), [1] + Array(creation.recoveryKey.printable.utf8)]
    }
}

enum KeyWrapFuzz {
    static func run(_ bytes: [UInt8]) -> Bool {
        guard let (kind, payload) = select(bytes, among: 2) else { return false }
        if kind == 0 {
            guard let wrapped = try? WrappedKey(bytes: payload) else { return false }
            return (try? wrapped.unwrap(under: FuzzKeys.secret, context: FuzzKeys.context)) != nil
        }
        guard let share = decodeRoundTrip(SealedShare.self, payload) else { return false }
        let opened = try? UserShare.open(
            share, nodeId: "node", senderId: "alice", sender: FuzzKeys.alice.publicIdentity, as: FuzzKeys.bob, recipientId: "bob")
        return opened != nil
    }

    static func seeds() -> [[UInt8]] {
        let wrapped = WrappedKey.wrap(FuzzKeys.secret, under: FuzzKeys.secret, context: FuzzKeys.context)
        let share = try! UserShare.seal(
            nodeKey: FuzzKeys.secret, nodeId: "node", from: FuzzKeys.alice, senderId: "alice",
            to: FuzzKeys.bob.publicIdentity, recipientId: "bob")
        return [[0] + wrapped.bytes, [1] + encodeJSON(share)]
    }
}

enum AttributesFuzz {
    static func run(_ bytes: [UInt8]) -> Bool {
        guard let (kind, payload) = select(bytes, among: 2) else { return false }
        if kind == 0 {
            guard let attributes = try? AttributeBox.open(payload, nodeKey: FuzzKeys.secret, nodeId: "node") else { return false }
            return (try? attributes.validate()) != nil
        }
        guard let attributes = decodeRoundTrip(NodeAttributes.self, payload), (try? attributes.validate()) != nil else { return false }
        let sealed = try! AttributeBox.seal(attributes, nodeKey: FuzzKeys.secret, nodeId: "node")
        precondition((try? AttributeBox.open(sealed, nodeKey: FuzzKeys.secret, nodeId: "node")) == attributes, "attributes do not survive sealing")
        return true
    }

    static func seeds() -> [[UInt8]] {
        let attributes = NodeAttributes(name: "Rapport annuel — 2026.pdf", size: 123_456, modified: 1_790_000_000_000)
        let sealed = try! AttributeBox.seal(attributes, nodeKey: FuzzKeys.secret, nodeId: "node")
        return [[0] + sealed, [1] + encodeJSON(attributes)]
    }
}

enum ManifestFuzz {
    static func run(_ bytes: [UInt8]) -> Bool {
        guard let manifest = try? ObjectManifest.decode(bytes) else { return false }
        precondition((try? ObjectManifest.decode(encodeJSON(manifest))) == manifest, "a manifest does not survive encoding")
        // What reads and repair compute from a valid manifest must not trap.
        for segment in manifest.segments {
            for shard in segment.shards { _ = segment.shardKey(object: manifest.id, shard: shard.index) }
            _ = manifest.erasure(of: segment).shardLength(forSegmentLength: segment.length)
        }
        return true
    }

    static func seeds() -> [[UInt8]] {
        let policy = try! ErasurePolicy(dataShards: 6, parityShards: 3)
        let other = try! ErasurePolicy(dataShards: 8, parityShards: 4)
        func segment(_ index: Int, _ length: Int, _ erasure: ErasurePolicy, mixed: Bool) -> SegmentManifest {
            SegmentManifest(
                index: index, length: length, shardLength: erasure.shardLength(forSegmentLength: length),
                shards: (0..<erasure.totalShards).map { ShardLocation(index: $0, node: try! NodeID("fr-\($0 % 3 + 1)"), checksum: UInt32($0 * 7)) },
                placementDebt: index == 1, policy: mixed ? erasure : nil, generation: mixed ? 2 : nil)
        }
        let size = 1 << 20
        let empty = ObjectManifest(id: "AAAAAAAAAAAAAAAAAAAAAA", owner: "acct", length: 0, segmentSize: size, policy: policy, segments: [], createdAt: 1)
        let mixed = ObjectManifest(
            id: "BBBBBBBBBBBBBBBBBBBBBB", owner: "acct", length: Int64(2 * size + 10), segmentSize: size, policy: policy,
            segments: [segment(0, size, policy, mixed: false), segment(1, size, other, mixed: true), segment(2, 10, policy, mixed: false)],
            createdAt: 1_790_000_000_000)
        return [encodeJSON(empty), encodeJSON(mixed)]
    }
}

enum ShardRecordFuzz {
    static func run(_ bytes: [UInt8]) -> Bool {
        guard let (kind, payload) = select(bytes, among: 2) else { return false }
        if kind == 1 { return (try? ShardKey(payload)) != nil }
        guard let record = ShardRecord(decoding: payload) else { return false }
        precondition(record.encoded() == payload, "a shard record does not survive encoding")
        return true
    }

    static func seeds() -> [[UInt8]] {
        let record = ShardRecord(length: 1 << 20, checksum: 0xDEAD_BEEF, createdAt: Date(timeIntervalSince1970: 1_790_000_000.123), inline: false)
        let inline = ShardRecord(length: 100, checksum: 7, createdAt: Date(timeIntervalSince1970: 1_790_000_000), inline: true)
        return [[0] + record.encoded(), [0] + inline.encoded(), [1] + Array("BBBBBBBBBBBBBBBBBBBBBB/1/4/2".utf8)]
    }
}

enum ConfigurationFuzz {
    static func run(_ bytes: [UInt8]) -> Bool {
        guard let (kind, payload) = select(bytes, among: 2) else { return false }
        do {
            if kind == 0 {
                let configuration = try decodeYAMLConfiguration(CoordinatorConfiguration.self, from: Data(payload), file: "fuzz")
                try configuration.validate(file: "fuzz", checkFiles: false)
            } else {
                let configuration = try decodeYAMLConfiguration(StorageNodeConfiguration.self, from: Data(payload), file: "fuzz")
                try configuration.validate(file: "fuzz", checkFiles: false)
            }
            return true
        } catch {
            _ = error.description
            return false
        }
    }

    static func seeds() -> [[UInt8]] {
        let coordinator = """
            id: fr
            country: FR
            region: eu-west
            port: 8443
            tls: {certificate: certs/fr.pem, key: certs/fr.key, cluster_ca: certs/ca.pem}
            etcd: [http://127.0.0.1:2379]
            nodes:
              - {id: fr-1, country: FR, region: eu-west, url: "https://127.0.0.1:9001"}
            policy: {k: 6, m: 3, margin: 1, excluded_countries: [CH]}
            segment_size_bytes: 16777216
            admin_token: 0123456789abcdef0123
            cluster_port: 7443

            """
        let node = """
            node: fr-1
            country: FR
            region: eu-west
            data_directory: /var/lib/coffre/fr-1
            capacity_bytes: 1000000000
            durability: synced
            engine: files
            tls: {certificate: certs/fr-1.pem, key: certs/fr-1.key, cluster_ca: certs/ca.pem}
            announce: ["https://127.0.0.1:7443"]

            """
        return [[0] + Array(coordinator.utf8), [1] + Array(node.utf8)]
    }
}

enum ShareLinkFuzz {
    static func run(_ bytes: [UInt8]) -> Bool {
        guard let link = try? ShareLink.parse(String(decoding: bytes, as: UTF8.self)) else { return false }
        let again = try? ShareLink.parse(ShareLink.url(host: link.host, linkId: link.linkId, secret: link.secret))
        precondition(again?.host == link.host && again?.linkId == link.linkId && again?.secret == link.secret, "a link does not survive printing")
        return true
    }

    static func seeds() -> [[UInt8]] {
        let secret = [UInt8](repeating: 9, count: 32)
        return [
            Array(ShareLink.url(host: "eu.coffre.example:8443", linkId: Base64URL.encode([UInt8](repeating: 3, count: 16)), secret: secret).utf8),
            Array(ShareLink.url(host: "127.0.0.1", linkId: Base64URL.encode([UInt8](repeating: 250, count: 16)), secret: secret).utf8),
        ]
    }
}

/// JSON records decoded by type: each kind decodes, and must survive a round trip.
enum RecordFuzz {
    struct Kind: Sendable {
        let decode: @Sendable ([UInt8]) -> Bool
        let seed: @Sendable () -> [UInt8]
    }

    static func kind<T: Codable & Equatable & Sendable>(_ type: T.Type, _ seed: @escaping @Sendable () -> T) -> Kind {
        Kind(decode: { decodeRoundTrip(T.self, $0) != nil }, seed: { encodeJSON(seed()) })
    }

    static func run(_ bytes: [UInt8], kinds: [Kind]) -> Bool {
        guard let (index, payload) = select(bytes, among: kinds.count) else { return false }
        return kinds[index].decode(payload)
    }

    static func seeds(kinds: [Kind]) -> [[UInt8]] {
        kinds.enumerated().map { [UInt8($0.offset)] + $0.element.seed() }
    }

    static let metadataKinds: [Kind] = [
        kind(TreeNodeInfo.self) { RecordSeeds.treeNode },
        kind(LinkRecord.self) { RecordSeeds.link },
        kind(DrillRecord.self) { RecordSeeds.drill },
        kind(RebalanceStatus.Job.self) { RecordSeeds.rebalanceJob },
        kind(PolicyStatus.Job.self) { RecordSeeds.policyJob },
        kind(ClusterPolicy.self) { RecordSeeds.clusterPolicy },
        kind(CountryList.self) { RecordSeeds.countries },
        kind(RepairStatus.self) { RecordSeeds.repairStatus },
        kind(SealedShare.self) { RecordSeeds.share },
        kind(ShareList.self) { RecordSeeds.shareList },
        kind(PendingKeyChanges.self) { PendingKeyChanges(nodes: ["n1", "n2"], more: false) },
        kind(TakedownInfo.self) { RecordSeeds.takedown },
        kind(TakedownNotice.self) { RecordSeeds.takedown.notice },
        kind(BinList.self) {
            var node = RecordSeeds.treeNode
            node.trashedAt = 1_790_000_000_000
            return BinList(entries: [BinEntry(node: node, ancestors: [RecordSeeds.treeNode], purgeAt: 1_792_592_000_000)], next: "n1")
        },
        kind(PurgeResult.self) { PurgeResult(nodes: 3, bytes: 1 << 20) },
    ]

    static let requestKinds: [Kind] = [
        kind(RegisterRequest.self) { RecordSeeds.register },
        kind(LoginRequest.self) { LoginRequest(username: "alice", authKey: Base64URL.encode([UInt8](repeating: 1, count: 32))) },
        kind(CreateFolderRequest.self) { RecordSeeds.createFolder },
        kind(UpdateNodeRequest.self) { RecordSeeds.updateNode },
        kind(CreateLinkRequest.self) { RecordSeeds.createLink },
        kind(DrillStartRequest.self) { RecordSeeds.drillStart },
        kind(PolicyChangeRequest.self) { PolicyChangeRequest(k: 8, m: 4) },
        kind(RebalanceStartRequest.self) { RecordSeeds.rebalanceStart },
        kind(RepairBudgetRequest.self) { RepairBudgetRequest(bytesPerSecond: 50_000_000) },
        kind(NodeAnnouncement.self) { NodeAnnouncement(node: "de-4", country: "DE", region: "eu-central", url: "https://127.0.0.1:9010") },
        kind(CreateShareRequest.self) { RecordSeeds.createShare },
        kind(PublicKeys.self) { RecordSeeds.publicKeys },
        kind(RekeyFolderRequest.self) { RecordSeeds.rekeyFolder },
        kind(RekeyChildrenRequest.self) { RecordSeeds.rekeyChildren },
        kind(CreateTakedownRequest.self) {
            CreateTakedownRequest(linkId: Base64URL.encode([UInt8](repeating: 3, count: 16)), reason: .copyright, notice: "DMCA-1", scope: "country:FR", file: true)
        },
        kind(AppealTakedownRequest.self) { AppealTakedownRequest(message: "I hold the rights.\nSee the licence.") },
        kind(SuspendAccountRequest.self) { SuspendAccountRequest(reason: "repeated infringement") },
        kind(SetAccountRequest.self) { SetAccountRequest(quotaBytes: 50 << 30, transferQuotaBytes: 1 << 40) },
        kind(ExcludedCountries.self) { ExcludedCountries(countries: ["US", "CN"]) },
    ]
}
