import ClusterTLS
import CoffreModel
import Coordinator
import Foundation
import Metadata
import NIOCore
import NodeClient
import Placement
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A real data path: 12 `coffred node` processes in 4 countries, a real etcd, RS(6,3).
struct DataPathCluster {
    let nodes: [NodeProcess]
    let store: ObjectStore
    let client: StorageNodeClient

    /// How long a request to a node may take: a read that waited for a frozen node would
    /// wait this long for each segment.
    static let requestTimeout: Duration = .seconds(30)

    static func start(folder: String, segmentSize: Int) async throws -> DataPathCluster {
        let pki = try TestPKI(folder: folder)
        let nodes = try await NodeProcess.startMany(countries: ["FR", "DE", "CH", "NZ"], perCountry: 3, folder: folder, pki: pki)
        let client = StorageNodeClient(tls: try TLSSetup.client(ca: pki.ca, certificate: pki.certificate("coordinator"), key: pki.key("coordinator")), timeout: DataPathCluster.requestTimeout)
        let members = try nodes.map {
            ClusterTopology.Member(id: try NodeID($0.id), country: try Country($0.country), region: $0.region, url: $0.base)
        }
        let topology = ClusterTopology(members: members, client: client, downAfter: .seconds(600))
        let answered = await topology.refresh()
        precondition(answered == 12, "only \(answered) of 12 nodes answered")
        let etcd = try await EtcdProcess.shared()
        let policy = try PlacementPolicy(erasure: ErasurePolicy(dataShards: 6, parityShards: 3))
        let store = ObjectStore(
            topology: topology, metadata: try EtcdMetadataStore(endpoints: [etcd.clientURL]), policy: policy, segmentSize: segmentSize,
            hedgeAfter: .milliseconds(300))
        return DataPathCluster(nodes: nodes, store: store, client: client)
    }

    func stop() async throws {
        for node in nodes where node.process.isRunning { node.process.kill9() }
        try await client.shutdown()
    }

    /// Uploads `bytes` in pieces of varying size and commits the manifest.
    func upload(_ bytes: [UInt8], id: String, seed: UInt64) async throws -> ObjectManifest {
        var random = SeededGenerator(seed: seed)
        let writer = store.makeWriter(objectId: id, owner: "test")
        var offset = 0
        while offset < bytes.count {
            let count = min(bytes.count - offset, Int.random(in: 1...300_000, using: &random))
            try await writer.append(ByteBuffer(bytes: bytes[offset..<(offset + count)]))
            offset += count
        }
        let manifest = try await writer.finish()
        let committed = try await store.metadata.create(ObjectStore.manifestKey(id), Array(JSONEncoder().encode(manifest)))
        precondition(committed != nil)
        return manifest
    }

    func download(_ id: String, range: Range<Int64>? = nil) async throws -> [UInt8] {
        let manifest = try await store.manifest(id)
        var out: [UInt8] = []
        try await store.read(manifest, range: range) { out += Array(buffer: $0) }
        return out
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct ObjectStoreTests {
    @Test func uploadsAcrossFourCountriesAndReadsBackThroughAnOutage() async throws {
        try await withTemporaryDirectory { folder in
            let cluster = try await DataPathCluster.start(folder: folder, segmentSize: 1 << 20)
            do {
                var random = SeededGenerator(seed: 11)
                let sizes = [0, 1, 1 << 20, (1 << 20) + 1, 5 * (1 << 20) + 12_345]
                var objects: [(String, [UInt8])] = []
                for (i, size) in sizes.enumerated() {
                    let bytes = random.bytes(size)
                    let id = "obj-\(i)-\(UUID().uuidString.prefix(8))"
                    let manifest = try await cluster.upload(bytes, id: id, seed: UInt64(i))
                    #expect(manifest.length == Int64(size))
                    #expect(manifest.segments.count == (size + (1 << 20) - 1) / (1 << 20))
                    objects.append((id, bytes))
                    // Placement: distinct nodes, at most m - margin = 3 shards per country.
                    for segment in manifest.segments {
                        #expect(Set(segment.shards.map(\.node)).count == 9)
                        let perCountry = Dictionary(grouping: segment.shards, by: { String($0.node.value.prefix(2)) }).mapValues(\.count)
                        #expect(perCountry.values.allSatisfy { $0 <= 3 }, "\(perCountry)")
                        #expect(!segment.placementDebt)
                    }
                }
                for (id, bytes) in objects {
                    #expect(try await cluster.download(id) == bytes, "\(id)")
                }
                // Range reads inside a segment, across segments, and the last byte.
                let (bigId, big) = objects.last!
                for range in [Int64(0)..<10, 1_048_570..<1_048_600, 3_000_000..<5_000_000, Int64(big.count - 1)..<Int64(big.count)] {
                    #expect(try await cluster.download(bigId, range: range) == Array(big[Int(range.lowerBound)..<Int(range.upperBound)]))
                }

                // A node that hangs (SIGSTOP: connections open, no answer) is raced with parity.
                let frozen = try #require(cluster.nodes.first { $0.id == "fr-1" })
                kill(frozen.process.pid, SIGSTOP)
                let started = ContinuousClock.now
                #expect(try await cluster.download(bigId) == big)
                // Not a performance figure: six segments that each waited for the frozen node
                // would take six request timeouts; racing costs about a second each.
                #expect(ContinuousClock.now - started < DataPathCluster.requestTimeout, "a slow node must not set the pace")
                kill(frozen.process.pid, SIGCONT)
                #expect(await cluster.store.topology.refresh() == 12)

                // A whole country goes down (kill -9): every object still reads, by decoding.
                for node in cluster.nodes where node.country == "DE" { node.process.kill9() }
                for (id, bytes) in objects {
                    #expect(try await cluster.download(id) == bytes, "\(id) with DE down")
                }
                // Uploads go on: 9 nodes in 3 countries still satisfy RS(6,3) at 3 per country.
                _ = await cluster.store.topology.refresh()
                let during = random.bytes(3 * (1 << 20))
                let manifest = try await cluster.upload(during, id: "during-outage", seed: 99)
                #expect(manifest.segments.allSatisfy { segment in segment.shards.allSatisfy { !$0.node.value.hasPrefix("de-") } })
                #expect(try await cluster.download("during-outage") == during)

                // Three countries down: at most 3 shards of a segment remain, fewer than k = 6, so
                // reads fail with a clear error rather than wrong bytes.
                for node in cluster.nodes where node.country != "NZ" && node.process.isRunning { node.process.kill9() }
                await #expect { _ = try await cluster.download(bigId) } throws: { error in
                    guard let error = error as? CoordinatorError else { return false }
                    return error.code == .unavailable && error.message.contains("needs 6 shards")
                }
            } catch {
                Issue.record("\(error)")
            }
            try await cluster.stop()
        }
    }
}
