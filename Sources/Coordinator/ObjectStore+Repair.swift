import Checksum
public import CoffreModel
import Foundation
public import Metadata
import NIOCore
import NodeClient
public import Placement

/// What repairing one segment did.
public enum SegmentRepairOutcome: Hashable, Sendable {
    /// Rebuilt and committed: bytes read from healthy shards, bytes written, new homes.
    case repaired(bytesRead: Int64, bytesWritten: Int64, nodes: [Int: NodeID], placementDebt: Bool)
    /// Nothing to do any more (object deleted, shards already moved).
    case skipped(String)
    /// The manifest or the leadership changed meanwhile: nothing applied; plan again.
    case conflict(String)
}

extension ObjectStore {
    /// Rebuilds a segment's lost shards and swaps its manifest: gather k healthy shards,
    /// rebuild only the lost ones, check each against the manifest's CRC-32C (a forged or
    /// rotten source cannot slip through), write them where the placement policy says
    /// (never on a node already holding a shard of the segment, never on an avoided node),
    /// then commit by compare-and-swap on the manifest's revision and on `fence`.
    ///
    /// The shards to rebuild are worked out again from the manifest as read now: those on a
    /// node in `lostNodes` or unknown to the topology, and those in `suspects`.
    ///
    /// - Parameter fence: the leader's condition (`LeaderTerm.fence`); nil only in tests.
    public func repairSegment(
        objectId: String, segment index: Int, lostNodes: Set<NodeID>, suspects: Set<ShardRef>, fence: MetadataCondition?
    ) async throws(CoordinatorError) -> SegmentRepairOutcome {
        let key = Keyspace.manifest(objectId)
        let entry: MetadataEntry?
        do { entry = try await metadata.get(key) } catch { throw CoordinatorError(error.code, error.message) }
        guard let entry else { return .skipped("object \(objectId) is gone") }
        let manifest: ObjectManifest
        do { manifest = try JSONDecoder().decode(ObjectManifest.self, from: Data(entry.value)) } catch {
            throw CoordinatorError(.storageFailure, "manifest of \(objectId) is unreadable: \(error)")
        }
        guard let segment = manifest.segments.first(where: { $0.index == index }) else {
            return .skipped("object \(objectId) has no segment \(index)")
        }
        guard manifest.policy == policy.erasure else {
            return .skipped("segment is \(manifest.policy), the cluster writes \(policy.erasure): a policy change is the rebalancer's")
        }
        let lost = segment.shards.filter {
            lostNodes.contains($0.node) || topology.member($0.node) == nil
                || suspects.contains(ShardRef(objectId: objectId, segment: index, shard: $0.index))
        }.map(\.index)
        guard !lost.isEmpty else { return .skipped("no shard of \(objectId)/\(index) is lost any more") }

        let k = manifest.policy.dataShards
        let total = manifest.policy.totalShards
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
        try rebuild(&buffer, policy: manifest.policy, shardLength: length, present: present, wanted: Set(lost))

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
                objectId: objectId, segment: index, shardLength: length, bodies: bodies, checksums: checksums, fixed: fixed,
                avoiding: avoiding)
        } catch let error as CoordinatorError {
            throw error
        } catch let error as PlacementError {
            throw CoordinatorError(error.code, error.message)
        } catch {
            throw CoordinatorError(.storageFailure, "\(error)")
        }
        let updated = manifest.replacing(segment: index, nodes: written.nodes, placementDebt: written.placementDebt)
        let mutations = Self.repairMutations(old: manifest, new: updated, repaired: lost.map { ShardRef(objectId: objectId, segment: index, shard: $0) }, suspectNodes: segment.shards)
        let conditions = [MetadataCondition.revision(key, entry.modRevision)] + (fence.map { [$0] } ?? [])
        let committed: Int64?
        do { committed = try await metadata.commit(if: conditions, then: mutations) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        // Neither the copies just written (on a conflict) nor the replaced ones are deleted
        // here: the collector removes unreferenced shards after a grace period, checking the
        // manifest when it deletes. A delete from here could race a newer leader's repair
        // that put the same shard on the same node.
        guard committed != nil else {
            return .conflict("manifest of \(objectId) or the leadership changed during the repair")
        }
        return .repaired(
            bytesRead: Int64(k * length), bytesWritten: Int64(lost.count * length), nodes: written.nodes,
            placementDebt: written.placementDebt)
    }

    /// The manifest swap, the placement index kept in step, and the repaired suspects cleared.
    static func repairMutations(old: ObjectManifest, new: ObjectManifest, repaired: [ShardRef], suspectNodes: [ShardLocation]) -> [MetadataMutation] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var mutations: [MetadataMutation] = [.put(Keyspace.manifest(new.id), Array(try! encoder.encode(new)))]
        let before = Set(old.segments.flatMap { $0.shards.map(\.node) })
        let after = Set(new.segments.flatMap { $0.shards.map(\.node) })
        for node in after.subtracting(before).sorted() { mutations.append(.put(Keyspace.placement(node, new.id), [])) }
        for node in before.subtracting(after).sorted() { mutations.append(.delete(Keyspace.placement(node, new.id))) }
        for ref in repaired {
            mutations.append(.delete(Keyspace.suspect(suspectNodes[ref.shard].node, ref.objectId, segment: ref.segment, shard: ref.shard)))
        }
        return mutations
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
                placementDebt: placementDebt)
        }
        return ObjectManifest(id: id, owner: owner, length: length, segmentSize: segmentSize, policy: policy, segments: segments, createdAt: createdAt)
    }
}
