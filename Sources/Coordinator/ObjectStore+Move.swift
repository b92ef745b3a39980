public import CoffreModel
import Foundation
public import Metadata
import NIOCore
import NodeClient
public import Placement

/// What moving shards of one object did.
public enum ShardMoveOutcome: Hashable, Sendable {
    /// Copied, verified and committed.
    case moved(moves: Int, bytes: Int64)
    /// Nothing to do: the object is gone, or no planned move matches its manifest any more.
    case skipped(String)
    /// The manifest or the leadership changed meanwhile: nothing applied; plan again.
    case conflict(String)
}

extension ObjectStore {
    /// Carries out planned moves of one object's shards (the rebalancer's, `RebalancePlanner`):
    /// each shard is read from its source (the same `gatherShards` step reads use, checked
    /// against the manifest's CRC-32C), written to its target, and the manifest is swapped by
    /// compare-and-swap on its revision and on `fence` (`swapManifest`: the index kept in
    /// step). The source's copy is left to the collector, which deletes it after its grace
    /// once no manifest names it.
    ///
    /// A move that no longer matches the manifest (the shard moved, the target now holds one
    /// of the segment, the target left) is dropped. A shard that cannot be read or written
    /// fails the call with nothing committed: repair or the next plan deals with it.
    public func moveShards(objectId: String, moves: [ShardMove], fence: MetadataCondition?) async throws(CoordinatorError) -> ShardMoveOutcome {
        guard let (manifest, revision) = try await manifestAndRevision(objectId) else { return .skipped("object \(objectId) is gone") }
        let valid = moves.filter { move in
            guard move.objectId == objectId, let segment = manifest.segments.first(where: { $0.index == move.segment }),
                move.shard < segment.shards.count, topology.member(move.to) != nil
            else { return false }
            return segment.shards[move.shard].node == move.from && !segment.shards.contains { $0.node == move.to }
        }
        guard !valid.isEmpty, Set(valid.map { "\($0.segment)/\($0.to)" }).count == valid.count else {
            return .skipped("the planned moves of \(objectId) no longer match its manifest")
        }
        var updated = manifest
        var bytes: Int64 = 0
        for move in valid {
            let segment = manifest.segments.first { $0.index == move.segment }!
            let gathered = await gatherShards(objectId: objectId, segment: segment, count: 1, candidates: [move.shard])
            guard let body = gathered.bodies[move.shard] else {
                throw CoordinatorError(.unavailable, "cannot read shard \(move.shard) of \(objectId)/\(move.segment) from \(move.from): \(gathered.failureSummary())")
            }
            let failures = await putShards(
                objectId: objectId, segment: move.segment, generation: segment.generation ?? 0, targets: [(move.shard, move.to)],
                bodies: [move.shard: body], checksums: [move.shard: segment.shards[move.shard].checksum])
            shardBuffers.give(body)
            if let error = failures[move.shard] {
                if error.code == .nodeFull { topology.reportFull(move.to) } else { topology.reportFailure(move.to) }
                throw CoordinatorError(error.code, "cannot write shard \(move.shard) of \(objectId)/\(move.segment) to \(move.to): \(error.message)")
            }
            let now = updated.segments.first { $0.index == move.segment }!
            var nodes = now.shards.map(\.node)
            nodes[move.shard] = move.to
            let rules = policy.forSegments(of: manifest.erasure(of: segment)).excluding(manifest.excluded)
            let debt = !PlacementPlanner.violations(of: Placement(nodes: nodes, placementDebt: false), policy: rules, nodes: topology.descriptors()).isEmpty
            updated = updated.replacing(segment: move.segment, nodes: [move.shard: move.to], placementDebt: debt)
            bytes += Int64(segment.shardLength)
        }
        guard try await swapManifest(from: manifest, revision: revision, to: updated, fence: fence) else {
            return .conflict("manifest of \(objectId) or the leadership changed during the move")
        }
        return .moved(moves: valid.count, bytes: bytes)
    }

    /// Hands every committed manifest to `body`, a page at a time, up to
    /// `Limits.rebalancePlanObjectsMax` objects (`complete` says whether that was all): the one
    /// walk over every object that dry runs, drill checks and the policy status make.
    public func everyManifest(_ body: (ObjectManifest) -> Void) async throws(CoordinatorError) -> (objects: Int, complete: Bool) {
        var objects = 0
        var after: String?
        repeat {
            let page: [MetadataEntry]
            do { page = try await metadata.list(prefix: Keyspace.manifests, after: after, limit: Limits.metadataListPageMax) } catch {
                throw CoordinatorError(error.code, error.message)
            }
            for entry in page {
                guard objects < Limits.rebalancePlanObjectsMax else { return (objects, false) }
                guard let manifest = try? ObjectManifest.decode(entry.value) else { continue }
                body(manifest)
                objects += 1
            }
            after = page.count == Limits.metadataListPageMax ? page.last?.key : nil
        } while after != nil
        return (objects, true)
    }

    /// The segments of every object as the planners see them (see `everyManifest`), with
    /// `only` those in that scheme, and how many are in placement debt.
    public func everySegment(only scheme: ErasurePolicy? = nil) async throws(CoordinatorError) -> (
        segments: [SegmentPlacement], objects: Int, complete: Bool, debt: Int
    ) {
        var segments: [SegmentPlacement] = []
        var debt = 0
        let (objects, complete) = try await everyManifest { manifest in
            segments += ObjectStore.segmentPlacements(manifest, only: scheme)
            debt += manifest.segments.filter(\.placementDebt).count
        }
        return (segments, objects, complete, debt)
    }

    /// The segments of an object as the rebalancer plans over them; with `only`, those in that
    /// scheme (the planner's country rule is the cluster's scheme's: a segment in another one
    /// waits for its re-encoding).
    public static func segmentPlacements(_ manifest: ObjectManifest, only scheme: ErasurePolicy? = nil) -> [SegmentPlacement] {
        manifest.segments.filter { scheme == nil || manifest.erasure(of: $0) == scheme }.map {
            SegmentPlacement(
                objectId: manifest.id, segment: $0.index, nodes: $0.shards.map(\.node), shardBytes: Int64($0.shardLength), excluded: manifest.excluded)
        }
    }
}
