import Checksum
public import CoffreModel
import ErasureCoding
import Foundation
import HTTPService
public import Metadata
public import NIOCore
public import NodeClient
public import Placement
import Synchronization
public import Telemetry

/// Objects over storage nodes: cuts ciphertext into segments, erasure-codes each, places the
/// shards, writes them in parallel (a failed node is replaced by an alternate), and commits
/// the manifest; reads data shards first and decodes from parity when some are missing.
///
/// The coordinator never sees plaintext: what comes in is the client's ciphertext, and this
/// type handles bytes only.
public final class ObjectStore: Sendable {
    public let topology: ClusterTopology
    public let metadata: any MetadataStore
    /// The policy new objects are written with. It changes online (`setPolicy`): objects
    /// written before keep theirs until re-encoded, and stay readable and repairable.
    public var policy: PlacementPolicy { currentPolicy.withLock { $0 } }
    private let currentPolicy: Mutex<PlacementPolicy>
    public let segmentSize: Int
    /// How long a read waits for a data shard before racing it with parity.
    public let hedgeAfter: Duration
    /// How old an unreferenced shard must be before the collector deletes it. An upload of
    /// more than one segment keeps an upload intent (`Keyspace.upload`) fresh; a one-segment
    /// upload without one must commit within half of it, or its commit is refused.
    public let collectorGrace: Duration
    /// Placement's randomness (seeded in simulations).
    public let placementRandom: RandomSource
    /// The clock of uploads and background work (the topology's unless given).
    public let clock: WorkClock
    /// Where an upload's segment writes run while its next segment is encoded: the global
    /// executor unless given (a simulation gives its serial one, to replay exactly).
    public let executor: (any TaskExecutor)?
    /// Reed-Solomon codecs by scheme (the tables are built once per scheme).
    private let codecs = Mutex<[ErasurePolicy: ReedSolomon]>([:])
    let nodes: any ShardTransport
    /// Buffers of a whole segment's shards, reused by writes and reads.
    let buffers: BufferPool
    /// Buffers of one shard, reused by reads.
    let shardBuffers: BufferPool
    /// Where hedged reads are counted (the coordinator's registry).
    public let metrics: MetricsRegistry

    public init(
        topology: ClusterTopology, metadata: any MetadataStore, policy: PlacementPolicy, segmentSize: Int = Limits.segmentSizeDefault,
        hedgeAfter: Duration = .seconds(1), collectorGrace: Duration = .seconds(Limits.collectorGraceSecondsDefault),
        placementRandom: RandomSource = RandomSource(), clock: WorkClock? = nil, executor: (any TaskExecutor)? = nil,
        transport: (any ShardTransport)? = nil, metrics: MetricsRegistry = MetricsRegistry()
    ) {
        self.metrics = metrics
        self.placementRandom = placementRandom
        self.executor = executor
        self.clock = clock ?? topology.clock
        self.hedgeAfter = hedgeAfter
        self.collectorGrace = collectorGrace
        precondition(segmentSize > 0 && segmentSize <= Limits.segmentSizeMax)
        self.topology = topology
        self.metadata = metadata
        currentPolicy = Mutex(policy)
        self.segmentSize = segmentSize
        self.nodes = transport ?? topology.client
        let layout = SegmentLayout(policy: policy.erasure, segmentLength: segmentSize)
        buffers = BufferPool(capacity: layout.totalShardBytes, keep: Limits.segmentBuffersPooledMax)
        shardBuffers = BufferPool(capacity: layout.shardLength, keep: Limits.shardBuffersPooledMax)
    }

    /// Changes the policy new objects are written with; true when it changed.
    @discardableResult
    public func setPolicy(_ policy: PlacementPolicy) -> Bool {
        currentPolicy.withLock { current in
            defer { current = policy }
            return current != policy
        }
    }

    /// The codec of a scheme.
    func codec(_ erasure: ErasurePolicy) -> ReedSolomon {
        codecs.withLock { codecs in
            if let codec = codecs[erasure] { return codec }
            let codec = ReedSolomon(policy: erasure)
            codecs[erasure] = codec
            return codec
        }
    }

    /// Starts writing a new object; none of its shards goes to `excluding` (its owner's
    /// excluded countries), nor to the policy's.
    public func makeWriter(objectId: String, owner: String, excluding: Set<Country> = []) -> ObjectWriter {
        ObjectWriter(store: self, objectId: objectId, owner: owner, excluding: excluding)
    }

    /// The manifest key of an object in the metadata store.
    public static func manifestKey(_ objectId: String) -> String { Keyspace.manifest(objectId) }

    /// Index entries (`Keyspace.placements`) for an object's shards on `nodes`, stamped with
    /// the time they were written: an entry whose manifest never came is dropped by the
    /// leader once it is older than the collector's grace.
    public func placementEntries(_ objectId: String, on nodes: some Sequence<NodeID>) -> [MetadataMutation] {
        let stamp = Array(String(clock.wallMillis()).utf8)
        return Set(nodes).sorted().map { .put(Keyspace.placement($0, objectId), stamp) }
    }

    /// Reads a committed manifest.
    public func manifest(_ objectId: String) async throws(CoordinatorError) -> ObjectManifest {
        let entry: MetadataEntry?
        do { entry = try await metadata.get(Self.manifestKey(objectId)) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        guard let entry else { throw CoordinatorError(.notFound, "no object \(objectId)") }
        do { return try ObjectManifest.decode(entry.value) } catch {
            throw CoordinatorError(error.code, "manifest of \(objectId) is unreadable: \(error.message)")
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
        // Structured read-ahead: the fetches are children of this read (cancelled with it, and
        // run on its executor), and finish in any order; they are written out in order.
        try await withThrowingTaskGroup(of: (Int, ByteBuffer).self) { group in
            var started = 0
            func startNext() {
                guard started < wanted.count else { return }
                let position = started
                group.addTask { (position, try await self.readSegment(manifest, wanted[position])) }
                started += 1
            }
            var ready: [Int: ByteBuffer] = [:]
            defer { for bytes in ready.values { buffers.give(bytes) } }
            while started < min(Limits.readAheadSegments, wanted.count) { startNext() }
            for (position, segment) in wanted.enumerated() {
                while ready[position] == nil, let (done, bytes) = try await group.next() { ready[done] = bytes }
                let bytes = ready.removeValue(forKey: position)!
                startNext()
                let start = Int64(segment.index) * Int64(manifest.segmentSize)
                let end = start + Int64(segment.length)
                let from = Int(max(range.lowerBound, start) - start)
                let to = Int(min(range.upperBound, end) - start)
                do {
                    try await write(bytes.getSlice(at: bytes.readerIndex + from, length: to - from)!)
                } catch {
                    buffers.give(bytes)
                    throw error
                }
                buffers.give(bytes)
            }
        }
    }

    /// One segment's ciphertext: the k data shards when they answer in time; otherwise any k
    /// shards (see `gatherShards`), decoded.
    func readSegment(_ manifest: ObjectManifest, _ segment: SegmentManifest) async throws(CoordinatorError) -> ByteBuffer {
        let erasure = manifest.erasure(of: segment)
        let k = erasure.dataShards
        let total = erasure.totalShards
        let length = segment.shardLength
        let gathered = await gatherShards(objectId: manifest.id, segment: segment, count: k, candidates: Array(0..<total))
        guard gathered.bodies.count >= k else {
            for body in gathered.bodies.values { shardBuffers.give(body) }
            throw CoordinatorError(
                .unavailable,
                "segment \(segment.index) of \(manifest.id) needs \(k) shards, \(gathered.bodies.count) readable (\(gathered.failureSummary()))")
        }
        var output = manifest.segmentSize == segmentSize ? buffers.take() : ByteBufferAllocator().buffer(capacity: length * total)
        // No zero fill: every shard slot read below is either copied in here or rebuilt by
        // `rebuild`, which overwrites the missing ones whole.
        output.reserveCapacity(length * total)
        output.moveWriterIndex(to: output.readerIndex + length * total)
        for (index, body) in gathered.bodies {
            output.setBuffer(body, at: output.readerIndex + index * length)
            shardBuffers.give(body)
        }
        let missingData = Set((0..<k).filter { gathered.bodies[$0] == nil })
        if !missingData.isEmpty {
            // Any k shards decode; extra ones (a raced data shard that came late) are ignored.
            let present = Set(gathered.bodies.keys.sorted().prefix(k))
            try rebuild(&output, policy: erasure, shardLength: length, present: present, wanted: missingData)
        }
        // The whole buffer, so that it can go back to the pool; only the segment is readable.
        output.moveWriterIndex(to: output.readerIndex + segment.length)
        return output
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
