import Checksum
public import CoffreModel
import Foundation
public import Metadata
import NIOCore
import NodeClient
public import Placement

/// What repairing segments of one object did.
public enum SegmentRepairOutcome: Hashable, Sendable {
    /// Rebuilt and committed: bytes read from healthy shards, bytes written, new homes
    /// (shard number -> node, over every segment repaired; see `segments` for which).
    case repaired(bytesRead: Int64, bytesWritten: Int64, nodes: [Int: NodeID], placementDebt: Bool)
    /// Nothing to do any more (object deleted, shards already moved).
    case skipped(String)
    /// The manifest or the leadership changed meanwhile: nothing applied; plan again.
    case conflict(String)
}

/// One segment rebuilt and written, not yet committed.
struct RebuiltSegment {
    let index: Int
    let lost: [Int]
    let nodes: [Int: NodeID]
    let placementDebt: Bool
    let bytesRead: Int64
    let bytesWritten: Int64
}

extension ObjectStore {
    /// Rebuilds a segment's lost shards and swaps its manifest (see `repairSegments`).
    public func repairSegment(
        objectId: String, segment index: Int, lostNodes: Set<NodeID>, suspects: Set<ShardRef>, fence: MetadataCondition?
    ) async throws(CoordinatorError) -> SegmentRepairOutcome {
        try await repairSegments(objectId: objectId, segments: [index], lostNodes: lostNodes, suspects: suspects, fence: fence)
    }

    /// Rebuilds the lost shards of some segments of one object, at most
    /// `Limits.repairSegmentsInFlightMax` at once, and swaps its manifest once: for each
    /// segment, gather k healthy shards, rebuild only the lost ones, check each against the
    /// manifest's CRC-32C (a forged or rotten source cannot slip through), write them where
    /// the placement policy says (never on a node already holding a shard of the segment,
    /// never on an avoided node); then commit by compare-and-swap on the manifest's revision
    /// and on `fence`. One swap per object, so segments of one object do not race each other.
    ///
    /// The shards to rebuild are worked out again from the manifest as read now: those on a
    /// node in `lostNodes` or unknown to the topology, and those in `suspects`. A segment
    /// that cannot be rebuilt fails the whole call (nothing is committed).
    ///
    /// - Parameter fence: the leader's condition (`LeaderTerm.fence`); nil only in tests.
    public func repairSegments(
        objectId: String, segments indices: [Int], lostNodes: Set<NodeID>, suspects: Set<ShardRef>, fence: MetadataCondition?
    ) async throws(CoordinatorError) -> SegmentRepairOutcome {
        guard let (manifest, revision) = try await manifestAndRevision(objectId) else { return .skipped("object \(objectId) is gone") }
        var work: [(SegmentManifest, [Int])] = []
        for index in Set(indices).sorted() {
            guard let segment = manifest.segments.first(where: { $0.index == index }) else { continue }
            let lost = segment.shards.filter {
                lostNodes.contains($0.node) || topology.member($0.node) == nil
                    || suspects.contains(ShardRef(objectId: objectId, segment: index, shard: $0.index, node: $0.node))
            }.map(\.index)
            if !lost.isEmpty { work.append((segment, lost)) }
        }
        guard !work.isEmpty else { return .skipped("no shard of \(objectId) segments \(indices) is lost any more") }

        // Each segment with its own scheme: one not yet re-encoded after a policy change is
        // repaired as it is.
        let rebuilt = try await rebuildAll(objectId: objectId, manifest: manifest, work: work, lostNodes: lostNodes)
        var updated = manifest
        var moved: [Int: NodeID] = [:]
        for segment in rebuilt {
            updated = updated.replacing(segment: segment.index, nodes: segment.nodes, placementDebt: segment.placementDebt)
            moved.merge(segment.nodes) { _, new in new }
        }
        let reported = rebuilt.flatMap { segment in
            segment.lost.compactMap { shard -> ShardRef? in
                let node = manifest.segments.first { $0.index == segment.index }!.shards[shard].node
                let ref = ShardRef(objectId: objectId, segment: segment.index, shard: shard, node: node)
                return suspects.contains(ref) ? ref : nil
            }
        }
        guard try await swapManifest(from: manifest, revision: revision, to: updated, fence: fence, clearing: reported) else {
            return .conflict("manifest of \(objectId) or the leadership changed during the repair")
        }
        return .repaired(
            bytesRead: rebuilt.reduce(0) { $0 + $1.bytesRead }, bytesWritten: rebuilt.reduce(0) { $0 + $1.bytesWritten }, nodes: moved,
            placementDebt: rebuilt.contains { $0.placementDebt })
    }

    /// A committed manifest and its revision (for a compare-and-swap); nil when there is none.
    func manifestAndRevision(_ objectId: String) async throws(CoordinatorError) -> (ObjectManifest, Int64)? {
        let entry: MetadataEntry?
        do { entry = try await metadata.get(Keyspace.manifest(objectId)) } catch { throw CoordinatorError(error.code, error.message) }
        guard let entry else { return nil }
        do { return (try ObjectManifest.decode(entry.value), entry.modRevision) } catch {
            throw CoordinatorError(error.code, "manifest of \(objectId) is unreadable: \(error.message)")
        }
    }

    /// Swaps a manifest for one with shards moved, by compare-and-swap on its revision and on
    /// `fence`; false when either changed (nothing applied). The placement index is kept in
    /// step around the swap, in transactions of its own so that no object is too spread out
    /// for one: new entries before (a stray one is harmless), stale entries and the suspect
    /// reports `clearing` after.
    ///
    /// Neither the copies just written (on a conflict) nor the replaced ones are deleted here:
    /// the collector removes unreferenced shards after a grace period, checking the manifest
    /// when it deletes. A delete from here could race a newer leader's move that put the same
    /// shard on the same node.
    func swapManifest(
        from manifest: ObjectManifest, revision: Int64, to updated: ObjectManifest, fence: MetadataCondition?, clearing reported: [ShardRef] = []
    ) async throws(CoordinatorError) -> Bool {
        let key = Keyspace.manifest(manifest.id)
        let before = Set(manifest.segments.flatMap { $0.shards.map(\.node) })
        let after = Set(updated.segments.flatMap { $0.shards.map(\.node) })
        do { try await metadata.applyInChunks(placementEntries(manifest.id, on: after.subtracting(before))) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        let conditions = [MetadataCondition.revision(key, revision)] + (fence.map { [$0] } ?? [])
        let committed: Int64?
        do { committed = try await metadata.commit(if: conditions, then: [.putJSON(key, updated)]) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        guard committed != nil else { return false }
        try? await metadata.applyInChunks(
            before.subtracting(after).sorted().map { .delete(Keyspace.placement($0, manifest.id)) }
                + reported.map { .delete(Keyspace.suspect($0.node, $0.objectId, segment: $0.segment, shard: $0.shard)) })
        return true
    }

    /// Rebuilds segments in parallel, at most `Limits.repairSegmentsInFlightMax` at once.
    private func rebuildAll(
        objectId: String, manifest: ObjectManifest, work: [(SegmentManifest, [Int])], lostNodes: Set<NodeID>
    ) async throws(CoordinatorError) -> [RebuiltSegment] {
        let results = await withTaskGroup(of: Result<RebuiltSegment, CoordinatorError>.self) { group in
            var pending = work[...]
            var results: [Result<RebuiltSegment, CoordinatorError>] = []
            func start() {
                guard let (segment, lost) = pending.popFirst() else { return }
                group.addTask {
                    do throws(CoordinatorError) {
                        return .success(
                            try await self.rebuildSegment(
                                objectId: objectId, policy: manifest.erasure(of: segment), excluded: manifest.excluded, segment: segment, lost: lost,
                                lostNodes: lostNodes))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            for _ in 0..<Limits.repairSegmentsInFlightMax { start() }
            while let result = await group.next() {
                results.append(result)
                start()
            }
            return results
        }
        var rebuilt: [RebuiltSegment] = []
        for result in results {
            switch result {
            case .success(let segment): rebuilt.append(segment)
            case .failure(let error): throw error
            }
        }
        return rebuilt.sorted { $0.index < $1.index }
    }

    /// One segment: gather k healthy shards, rebuild the lost ones, check them, write them.
    private func rebuildSegment(
        objectId: String, policy erasure: ErasurePolicy, excluded: Set<Country>, segment: SegmentManifest, lost: [Int], lostNodes: Set<NodeID>
    ) async throws(CoordinatorError) -> RebuiltSegment {
        let index = segment.index
        let k = erasure.dataShards
        let total = erasure.totalShards
        let length = segment.shardLength
        let candidates = segment.shards.filter { !lost.contains($0.index) }.map(\.index)
        let gathered = await gatherShards(objectId: objectId, segment: segment, count: k, candidates: candidates)
        defer { for body in gathered.bodies.values { shardBuffers.give(body) } }
        guard gathered.bodies.count >= k else {
            throw CoordinatorError(
                .unavailable,
                "segment \(index) of \(objectId) needs \(k) shards to rebuild \(lost.count), "
                    + "\(gathered.bodies.count) readable (\(gathered.failureSummary()))")
        }
        var buffer = ByteBufferAllocator().buffer(capacity: length * total)
        buffer.writeRepeatingByte(0, count: length * total)
        for (shard, body) in gathered.bodies { buffer.setBuffer(body, at: buffer.readerIndex + shard * length) }
        let present = Set(gathered.bodies.keys.sorted().prefix(k))
        try rebuild(&buffer, policy: erasure, shardLength: length, present: present, wanted: Set(lost))

        var bodies: [Int: ByteBuffer] = [:]
        var checksums: [Int: UInt32] = [:]
        for shard in lost {
            let body = buffer.getSlice(at: buffer.readerIndex + shard * length, length: length)!
            let expected = segment.shards[shard].checksum
            guard body.withUnsafeReadableBytes({ CRC32C.checksum($0) }) == expected else {
                throw CoordinatorError(.corrupt, "rebuilt shard \(shard) of \(objectId)/\(index) does not match its manifest checksum")
            }
            bodies[shard] = body
            checksums[shard] = expected
        }
        var fixed: [Int: NodeID] = [:]
        for location in segment.shards where !lost.contains(location.index) { fixed[location.index] = location.node }
        let avoiding = lostNodes.union(lost.map { segment.shards[$0].node })
        let written: (nodes: [Int: NodeID], placementDebt: Bool)
        do {
            written = try await writeShards(
                objectId: objectId, segment: index, generation: segment.generation ?? 0, policy: policy.forSegments(of: erasure).excluding(excluded),
                shardLength: length, bodies: bodies, checksums: checksums, fixed: fixed, avoiding: avoiding)
        } catch let error as CoordinatorError {
            throw error
        } catch let error as PlacementError {
            throw CoordinatorError(error.code, error.message)
        } catch {
            throw CoordinatorError(.storageFailure, "\(error)")
        }
        return RebuiltSegment(
            index: index, lost: lost, nodes: written.nodes, placementDebt: written.placementDebt, bytesRead: Int64(k * length),
            bytesWritten: Int64(lost.count * length))
    }
}

extension ObjectManifest {
    /// The same manifest with some shards of one segment moved.
    func replacing(segment index: Int, nodes moved: [Int: NodeID], placementDebt: Bool) -> ObjectManifest {
        let segments = self.segments.map { segment in
            guard segment.index == index else { return segment }
            return SegmentManifest(
                index: segment.index, length: segment.length, shardLength: segment.shardLength,
                shards: segment.shards.map { ShardLocation(index: $0.index, node: moved[$0.index] ?? $0.node, checksum: $0.checksum) },
                placementDebt: placementDebt, policy: segment.policy, generation: segment.generation)
        }
        return replacing(segments: segments)
    }

    /// The same manifest with other segments (policy, id and the rest kept).
    func replacing(segments: [SegmentManifest]) -> ObjectManifest {
        ObjectManifest(
            id: id, owner: owner, length: length, segmentSize: segmentSize, policy: policy, segments: segments, createdAt: createdAt,
            excludedCountries: excludedCountries)
    }
}
