import Checksum
public import CoffreModel
import ErasureCoding
import Foundation
import HTTPService
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
    /// How long a read waits for a data shard before racing it with parity.
    public let hedgeAfter: Duration
    let codec: ReedSolomon
    let nodes: StorageNodeClient
    /// Buffers of a whole segment's shards, reused by writes and reads.
    let buffers: BufferPool
    /// Buffers of one shard, reused by reads.
    let shardBuffers: BufferPool

    public init(
        topology: ClusterTopology, metadata: any MetadataStore, policy: PlacementPolicy, segmentSize: Int = Limits.segmentSizeDefault,
        hedgeAfter: Duration = .seconds(1)
    ) {
        self.hedgeAfter = hedgeAfter
        precondition(segmentSize > 0 && segmentSize <= Limits.segmentSizeMax)
        self.topology = topology
        self.metadata = metadata
        self.policy = policy
        self.segmentSize = segmentSize
        self.codec = ReedSolomon(policy: policy.erasure)
        self.nodes = topology.client
        let layout = SegmentLayout(policy: policy.erasure, segmentLength: segmentSize)
        buffers = BufferPool(capacity: layout.totalShardBytes, keep: Limits.segmentBuffersPooledMax)
        shardBuffers = BufferPool(capacity: layout.shardLength, keep: Limits.shardBuffersPooledMax)
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
    ///
    /// The next `Limits.readAheadSegments` segments are fetched while the current one is
    /// written out, so that node latency overlaps with sending (at most that many and the
    /// current one in memory: 96 MiB for RS(6,3) over 16 MiB segments).
    public func read(
        _ manifest: ObjectManifest, range: Range<Int64>? = nil, write: (ByteBuffer) async throws -> Void
    ) async throws {
        let range = range ?? 0..<manifest.length
        guard range.lowerBound >= 0, range.upperBound <= manifest.length else {
            throw CoordinatorError(.invalidArgument, "range \(range) outside an object of \(manifest.length) bytes")
        }
        let wanted = manifest.segments.filter { segment in
            let start = Int64(segment.index) * Int64(manifest.segmentSize)
            return start + Int64(segment.length) > range.lowerBound && start < range.upperBound
        }
        func fetch(_ segment: SegmentManifest) -> Task<ByteBuffer, any Error> {
            Task { try await self.readSegment(manifest, segment) }
        }
        var ahead = wanted.prefix(Limits.readAheadSegments).map(fetch)[...]
        defer { for task in ahead { task.cancel() } }
        for (position, segment) in wanted.enumerated() {
            let bytes = try await ahead.popFirst()!.value
            let following = position + Limits.readAheadSegments
            if following < wanted.count { ahead.append(fetch(wanted[following])) }
            let start = Int64(segment.index) * Int64(manifest.segmentSize)
            let end = start + Int64(segment.length)
            let from = Int(max(range.lowerBound, start) - start)
            let to = Int(min(range.upperBound, end) - start)
            try await write(bytes.getSlice(at: bytes.readerIndex + from, length: to - from)!)
            buffers.give(bytes)
        }
    }

    /// One segment's ciphertext: the k data shards when they answer in time; otherwise any k
    /// shards, decoded.
    ///
    /// A shard that fails (node down, error, checksum mismatch) is replaced by the next parity
    /// shard at once. A shard that is merely slow is raced: after `hedgeAfter`, parity shards
    /// are requested for every data shard still missing, and the first k to arrive win — a
    /// slow node never sets the pace of a read.
    func readSegment(_ manifest: ObjectManifest, _ segment: SegmentManifest) async throws(CoordinatorError) -> ByteBuffer {
        let k = manifest.policy.dataShards
        let total = manifest.policy.totalShards
        let length = segment.shardLength
        enum Event: Sendable {
            case shard(Int, Result<ByteBuffer, CoordinatorError>)
            case hedge
        }
        var fetched: [Int: ByteBuffer] = [:]
        var failures: [String] = []
        await withTaskGroup(of: Event.self) { group in
            var nextParity = k
            var inFlight = 0
            for index in 0..<k {
                group.addTask { .shard(index, await self.fetchShard(manifest.id, segment, index)) }
                inFlight += 1
            }
            group.addTask { [hedgeAfter] in
                try? await Task.sleep(for: hedgeAfter)
                return .hedge
            }
            while fetched.count < k, let event = await group.next() {
                switch event {
                case .hedge:
                    let wanted = min(total - nextParity, k - fetched.count)
                    for _ in 0..<max(0, wanted) {
                        let index = nextParity
                        nextParity += 1
                        group.addTask { .shard(index, await self.fetchShard(manifest.id, segment, index)) }
                        inFlight += 1
                    }
                case .shard(let index, .success(let body)):
                    inFlight -= 1
                    fetched[index] = body
                case .shard(let index, .failure(let error)):
                    inFlight -= 1
                    failures.append("shard \(index): \(error.message)")
                    if nextParity < total {
                        let parity = nextParity
                        nextParity += 1
                        group.addTask { .shard(parity, await self.fetchShard(manifest.id, segment, parity)) }
                        inFlight += 1
                    }
                }
                if inFlight == 0 && fetched.count < k && nextParity >= total { break }
            }
            group.cancelAll()
        }
        guard fetched.count >= k else {
            throw CoordinatorError(
                .unavailable,
                "segment \(segment.index) of \(manifest.id) needs \(k) shards, \(fetched.count) readable (\(failures.joined(separator: "; ")))")
        }
        var output = manifest.segmentSize == segmentSize ? buffers.take() : ByteBufferAllocator().buffer(capacity: length * total)
        // No zero fill: every shard slot read below is either copied in here or rebuilt by
        // `reconstruct`, which overwrites the missing ones whole.
        output.reserveCapacity(length * total)
        output.moveWriterIndex(to: output.readerIndex + length * total)
        for (index, body) in fetched {
            output.setBuffer(body, at: index * length)
            shardBuffers.give(body)
        }
        if (0..<k).contains(where: { fetched[$0] == nil }) {
            // Any k shards decode; extra ones (a raced data shard that came late) are ignored.
            let present = Set(fetched.keys.sorted().prefix(k))
            do {
                try output.withUnsafeMutableReadableBytes { all in
                    let buffers = (0..<total).map {
                        UnsafeMutableRawBufferPointer(rebasing: all[($0 * length)..<(($0 + 1) * length)])
                    }
                    try codec.reconstruct(shards: buffers, present: present)
                }
            } catch {
                throw CoordinatorError(.storageFailure, "cannot decode segment \(segment.index) of \(manifest.id): \(error)")
            }
        }
        // The whole buffer, so that it can go back to the pool; only the segment is readable.
        output.moveWriterIndex(to: output.readerIndex + segment.length)
        return output
    }

    /// One shard, checked against the manifest's checksum.
    private func fetchShard(_ objectId: String, _ segment: SegmentManifest, _ index: Int) async -> Result<ByteBuffer, CoordinatorError> {
        let location = segment.shards[index]
        guard let member = topology.member(location.node) else {
            return .failure(CoordinatorError(.notFound, "unknown node \(location.node)"))
        }
        guard topology.isUp(location.node) else {
            return .failure(CoordinatorError(.unavailable, "node \(location.node) is down"))
        }
        do {
            var body = shardBuffers.take()
            _ = try await nodes.get(
                base: member.url, key: ObjectManifest.shardKey(object: objectId, segment: segment.index, shard: index), into: &body)
            let actual = body.withUnsafeReadableBytes { CRC32C.checksum($0) }
            guard actual == location.checksum, body.readableBytes == segment.shardLength else {
                return .failure(CoordinatorError(.corrupt, "shard from \(location.node) does not match the manifest"))
            }
            return .success(body)
        } catch {
            // A fetch cancelled because others won the race says nothing about the node.
            if error.code == .unavailable && !Task.isCancelled { topology.reportFailure(location.node) }
            return .failure(CoordinatorError(error.code, error.message))
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
