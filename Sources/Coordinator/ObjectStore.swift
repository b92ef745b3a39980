import Checksum
public import CoffreModel
import ErasureCoding
import Foundation
public import Metadata
public import NIOCore
import NodeClient
public import Placement
import Synchronization

/// Objects over storage nodes: cuts ciphertext into segments, erasure-codes each, places the
/// shards, writes them in parallel (a failed node is replaced by an alternate), and commits
/// the manifest; reads data shards first and decodes from parity when some are missing.
///
/// The coordinator never sees plaintext: what comes in is the client's ciphertext, and this
/// type handles bytes only.
public final class ObjectStore: Sendable {
    public let topology: ClusterTopology
    public let metadata: any MetadataStore
    public let policy: PlacementPolicy
    public let segmentSize: Int
    let codec: ReedSolomon
    let nodes: StorageNodeClient

    public init(topology: ClusterTopology, metadata: any MetadataStore, policy: PlacementPolicy, segmentSize: Int = Limits.segmentSizeDefault) {
        precondition(segmentSize > 0 && segmentSize <= Limits.segmentSizeMax)
        self.topology = topology
        self.metadata = metadata
        self.policy = policy
        self.segmentSize = segmentSize
        self.codec = ReedSolomon(policy: policy.erasure)
        self.nodes = topology.client
    }

    /// Starts writing a new object.
    public func makeWriter(objectId: String, owner: String) -> ObjectWriter {
        ObjectWriter(store: self, objectId: objectId, owner: owner)
    }

    /// The manifest key of an object in the metadata store.
    public static func manifestKey(_ objectId: String) -> String { "objects/" + objectId }

    /// Reads a committed manifest.
    public func manifest(_ objectId: String) async throws(CoordinatorError) -> ObjectManifest {
        let entry: MetadataEntry?
        do { entry = try await metadata.get(Self.manifestKey(objectId)) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        guard let entry else { throw CoordinatorError(.notFound, "no object \(objectId)") }
        do {
            return try JSONDecoder().decode(ObjectManifest.self, from: Data(entry.value))
        } catch {
            throw CoordinatorError(.storageFailure, "manifest of \(objectId) is unreadable: \(error)")
        }
    }

    /// Reads bytes `range` of an object, segment by segment, handing each piece to `write`.
    public func read(
        _ manifest: ObjectManifest, range: Range<Int64>? = nil, write: (ByteBuffer) async throws -> Void
    ) async throws {
        let range = range ?? 0..<manifest.length
        guard range.lowerBound >= 0, range.upperBound <= manifest.length else {
            throw CoordinatorError(.invalidArgument, "range \(range) outside an object of \(manifest.length) bytes")
        }
        for segment in manifest.segments {
            let start = Int64(segment.index) * Int64(manifest.segmentSize)
            let end = start + Int64(segment.length)
            guard end > range.lowerBound, start < range.upperBound else { continue }
            let bytes = try await readSegment(manifest, segment)
            let from = Int(max(range.lowerBound, start) - start)
            let to = Int(min(range.upperBound, end) - start)
            try await write(bytes.getSlice(at: bytes.readerIndex + from, length: to - from)!)
        }
    }

    /// One segment's ciphertext: data shards if all answer, otherwise any k shards decoded.
    func readSegment(_ manifest: ObjectManifest, _ segment: SegmentManifest) async throws(CoordinatorError) -> ByteBuffer {
        let k = manifest.policy.dataShards
        let length = segment.shardLength
        var fetched: [Int: ByteBuffer] = [:]
        var failures: [String] = []
        // Data shards first; parity only to replace the ones that failed.
        var wanted = Array(0..<k)
        var spare = Array(k..<manifest.policy.totalShards)
        while !wanted.isEmpty {
            let results = await fetchShards(manifest.id, segment, wanted)
            wanted = []
            for (index, result) in results {
                switch result {
                case .success(let body): fetched[index] = body
                case .failure(let error):
                    failures.append("shard \(index): \(error.message)")
                    if let next = spare.first {
                        spare.removeFirst()
                        wanted.append(next)
                    }
                }
            }
        }
        guard fetched.count >= k else {
            throw CoordinatorError(
                .unavailable,
                "segment \(segment.index) of \(manifest.id) needs \(k) shards, \(fetched.count) readable (\(failures.joined(separator: "; ")))")
        }
        var output = ByteBufferAllocator().buffer(capacity: length * manifest.policy.totalShards)
        output.writeRepeatingByte(0, count: length * manifest.policy.totalShards)
        for (index, body) in fetched {
            output.setBuffer(body, at: index * length)
        }
        if (0..<k).contains(where: { fetched[$0] == nil }) {
            let present = Set(fetched.keys)
            do {
                try output.withUnsafeMutableReadableBytes { all in
                    let buffers = (0..<manifest.policy.totalShards).map {
                        UnsafeMutableRawBufferPointer(rebasing: all[($0 * length)..<(($0 + 1) * length)])
                    }
                    try codec.reconstruct(shards: buffers, present: present)
                }
            } catch {
                throw CoordinatorError(.storageFailure, "cannot decode segment \(segment.index) of \(manifest.id): \(error)")
            }
        }
        return output.getSlice(at: 0, length: segment.length)!
    }

    /// Fetches shards in parallel, checking each against the manifest's checksum.
    private func fetchShards(_ objectId: String, _ segment: SegmentManifest, _ indices: [Int]) async -> [(Int, Result<ByteBuffer, CoordinatorError>)] {
        await withTaskGroup(of: (Int, Result<ByteBuffer, CoordinatorError>).self) { group in
            for index in indices {
                let location = segment.shards[index]
                group.addTask { [nodes, topology] in
                    guard let member = topology.member(location.node) else {
                        return (index, .failure(CoordinatorError(.notFound, "unknown node \(location.node)")))
                    }
                    guard topology.isUp(location.node) else {
                        return (index, .failure(CoordinatorError(.unavailable, "node \(location.node) is down")))
                    }
                    do {
                        let (body, _) = try await nodes.get(base: member.url, key: ObjectManifest.shardKey(object: objectId, segment: segment.index, shard: index))
                        let actual = body.withUnsafeReadableBytes { CRC32C.checksum($0) }
                        guard actual == location.checksum, body.readableBytes == segment.shardLength else {
                            return (index, .failure(CoordinatorError(.corrupt, "shard from \(location.node) does not match the manifest")))
                        }
                        return (index, .success(body))
                    } catch let error as NodeClientError {
                        if error.code == .unavailable { topology.reportFailure(location.node) }
                        return (index, .failure(CoordinatorError(error.code, error.message)))
                    } catch {
                        return (index, .failure(CoordinatorError(.storageFailure, "\(error)")))
                    }
                }
            }
            var results: [(Int, Result<ByteBuffer, CoordinatorError>)] = []
            for await result in group { results.append(result) }
            return results
        }
    }
}

/// An error from the coordinator.
public struct CoordinatorError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
