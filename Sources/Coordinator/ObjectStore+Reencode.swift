public import CoffreModel
import ErasureCoding
import Foundation
public import Metadata
import NIOCore
public import Placement

/// What re-encoding segments of one object did.
public enum ReencodeOutcome: Hashable, Sendable {
    /// Segments re-encoded and committed; `finished`: every segment of the object now has the
    /// target scheme.
    case reencoded(segments: Int, bytesRead: Int64, bytesWritten: Int64, finished: Bool)
    /// Nothing to do: the object is gone, or already wholly in the target scheme.
    case skipped(String)
    /// The manifest or the leadership changed meanwhile: nothing applied; try again.
    case conflict(String)
}

extension ObjectStore {
    /// Re-encodes up to `segmentsMax` segments of an object that are not yet in `target`'s
    /// scheme, through the same steps reads and repair use: each segment's ciphertext is read
    /// (`readSegment`: any k healthy shards, checked and decoded), encoded anew, and its shards
    /// written where `target` places them under a new generation (their keys differ from the
    /// old shards', which stay readable until the swap); then the manifest is swapped by
    /// compare-and-swap on its revision and on `fence`. A segment records its scheme while its
    /// object is mixed; once every segment has the target's, the manifest says so and the
    /// segments stop carrying one. The old shards are the collector's after its grace.
    public func reencode(
        objectId: String, to target: PlacementPolicy, segmentsMax: Int, fence: MetadataCondition?
    ) async throws(CoordinatorError) -> ReencodeOutcome {
        guard let (manifest, revision) = try await manifestAndRevision(objectId) else { return .skipped("object \(objectId) is gone") }
        let pending = manifest.segments.filter { manifest.erasure(of: $0) != target.erasure }
        guard !pending.isEmpty else { return .skipped("object \(objectId) is \(target.erasure) already") }
        var rewritten: [Int: SegmentManifest] = [:]
        var read: Int64 = 0
        var written: Int64 = 0
        for segment in pending.prefix(max(1, segmentsMax)) {
            let ciphertext = try await readSegment(manifest, segment)
            let layout = SegmentLayout(policy: target.erasure, segmentLength: segment.length)
            var buffer = ByteBufferAllocator().buffer(capacity: layout.totalShardBytes)
            buffer.writeImmutableBuffer(ciphertext)
            buffers.give(ciphertext)
            let generation = (segment.generation ?? 0) + 1
            let fresh: SegmentManifest
            do {
                let encoded = try encodeSegment(&buffer, policy: target.erasure)
                fresh = try await writeSegment(
                    objectId: objectId, index: segment.index, shards: buffer, encoded: encoded, policy: target.excluding(manifest.excluded), generation: generation,
                    pooled: false)
            } catch let error as CoordinatorError {
                throw error
            } catch let error as any CodedError {
                throw CoordinatorError(error.code, error.message)
            } catch {
                throw CoordinatorError(.storageFailure, "re-encoding \(objectId)/\(segment.index): \(error)")
            }
            rewritten[segment.index] = SegmentManifest(
                index: fresh.index, length: fresh.length, shardLength: fresh.shardLength, shards: fresh.shards,
                placementDebt: fresh.placementDebt, policy: target.erasure, generation: generation)
            read += Int64(manifest.erasure(of: segment).dataShards * segment.shardLength)
            written += Int64(target.erasure.totalShards * fresh.shardLength)
        }
        var segments = manifest.segments.map { rewritten[$0.index] ?? $0 }
        let finished = segments.allSatisfy { ($0.policy ?? manifest.policy) == target.erasure }
        var updated = manifest.replacing(segments: segments)
        if finished {
            segments = segments.map {
                SegmentManifest(
                    index: $0.index, length: $0.length, shardLength: $0.shardLength, shards: $0.shards, placementDebt: $0.placementDebt,
                    generation: $0.generation)
            }
            updated = ObjectManifest(
                id: manifest.id, owner: manifest.owner, length: manifest.length, segmentSize: manifest.segmentSize, policy: target.erasure,
                segments: segments, createdAt: manifest.createdAt, excludedCountries: manifest.excludedCountries)
        }
        guard try await swapManifest(from: manifest, revision: revision, to: updated, fence: fence) else {
            return .conflict("manifest of \(objectId) or the leadership changed during the re-encoding")
        }
        return .reencoded(segments: rewritten.count, bytesRead: read, bytesWritten: written, finished: finished)
    }
}
