import Checksum
import CoffreModel
import ErasureCoding
import Foundation
import Metadata
import NIOCore
import NodeClient
import Placement
import Synchronization
import Telemetry

/// The three steps every path over shards is made of — reads, repair and (later) the
/// rebalancer call the same ones:
/// 1. `gatherShards`: any `count` healthy shards of a segment, raced against slow nodes;
/// 2. `rebuild`: the shards asked for, from k present ones (ISA-L computes only those rows);
/// 3. `writeShards`: shards to nodes the placement policy chooses, a failed node replaced by
///    an alternate.
///
/// None of them changes a manifest: the caller commits, by compare-and-swap.
extension ObjectStore {
    /// Shards gathered for one segment, and why the others were not.
    struct GatheredShards: Sendable {
        var bodies: [Int: ByteBuffer] = [:]
        /// Shard number -> what went wrong, for the error message and for heal on read.
        var failures: [Int: CoordinatorError] = [:]

        func failureSummary() -> String {
            failures.sorted { $0.key < $1.key }.map { "shard \($0.key): \($0.value.message)" }.joined(separator: "; ")
        }
    }

    /// Fetches `count` shards of a segment from `candidates` (shard numbers, in order of
    /// preference), each checked against the manifest's CRC-32C.
    ///
    /// The first `count` candidates are asked at once. A shard that fails (node down, error,
    /// checksum mismatch) is replaced by the next candidate at once. A shard that is merely
    /// slow is raced: after `hedgeAfter`, the next candidates are asked for every shard
    /// still missing, and the first `count` to arrive win — a slow node never sets the pace.
    /// A shard that a node reports corrupt or missing, or that fails the manifest's
    /// checksum, is recorded as a suspect for repair (heal on read). Nodes this coordinator
    /// believes down are skipped, and asked after all when the others are not enough (its
    /// view may be stale: a coordinator just thawed or reconnected has not polled yet).
    func gatherShards(
        objectId: String, segment: SegmentManifest, count: Int, candidates: [Int]
    ) async -> GatheredShards {
        enum Event: Sendable {
            case shard(Int, Result<ByteBuffer, CoordinatorError>)
            case hedge
        }
        var believedDown: [Int] = []
        var gathered = GatheredShards()
        // A node back with another store has none of its old shards: asked last, like a down one.
        let replaced = topology.replacedNodes()
        await withTaskGroup(of: Event.self) { group in
            var next = candidates[...]
            var inFlight = 0
            var hedging = false
            /// Asks for a shard; false when its node is believed down (kept for later).
            @discardableResult
            func ask(_ shard: Int, evenIfDown: Bool = false) -> Bool {
                let node = segment.shards[shard].node
                if !evenIfDown, !topology.isUp(node) || replaced.contains(node) {
                    believedDown.append(shard)
                    gathered.failures[shard] = CoordinatorError(.unavailable, "node \(node) is down or has lost its store")
                    return false
                }
                inFlight += 1
                if hedging { metrics.counter(.shardHedges, node.value).increment() }
                group.addTask { .shard(shard, await self.fetchShard(objectId, segment, shard)) }
                return true
            }
            /// Asks `wanted` more nodes, believed-down ones last.
            func askMore(_ wanted: Int) {
                var asked = 0
                while asked < wanted, let shard = next.popFirst() { if ask(shard) { asked += 1 } }
                while asked < wanted, !believedDown.isEmpty {
                    ask(believedDown.removeFirst(), evenIfDown: true)
                    asked += 1
                }
            }
            askMore(count)
            group.addTask { [hedgeAfter] in
                try? await Task.sleep(for: hedgeAfter)
                return .hedge
            }
            while gathered.bodies.count < count, let event = await group.next() {
                switch event {
                case .hedge:
                    hedging = true
                    askMore(count - gathered.bodies.count)
                    hedging = false
                case .shard(let index, .success(let body)):
                    inFlight -= 1
                    gathered.bodies[index] = body
                case .shard(let index, .failure(let error)):
                    inFlight -= 1
                    gathered.failures[index] = error
                    askMore(1)
                }
                if inFlight == 0 && gathered.bodies.count < count { break }
            }
            group.cancelAll()
        }
        return gathered
    }

    /// Rebuilds `wanted` shards in `buffer` (k + m shards of `shardLength`, laid out one
    /// after the other) from the shards in `present`.
    func rebuild(
        _ buffer: inout ByteBuffer, policy: ErasurePolicy, shardLength: Int, present: Set<Int>, wanted: Set<Int>?
    ) throws(CoordinatorError) {
        let total = policy.totalShards
        let codec = codec(policy)
        do {
            try buffer.withUnsafeMutableReadableBytes { all throws(ErasureCodingError) in
                let shards = (0..<total).map {
                    UnsafeMutableRawBufferPointer(rebasing: all[($0 * shardLength)..<(($0 + 1) * shardLength)])
                }
                try codec.reconstruct(shards: shards, present: present, wanted: wanted)
            }
        } catch {
            throw CoordinatorError(.storageFailure, "cannot rebuild shards \(wanted.map { $0.sorted() } ?? []): \(error.message)")
        }
    }

    /// Writes `bodies` (shard number -> body) to nodes chosen under the placement policy,
    /// keeping `fixed` (the segment's other shards: shard number -> node) where they are and
    /// never using a node in `avoiding`. A shard whose write fails goes to an alternate: at
    /// most `Limits.shardWriteAttemptsMax` rounds with failures, not counting rounds where
    /// every failure was a full node (it answers at once, and is asked no more).
    ///
    /// - Returns: the node of every shard written, and whether the segment's placement (with
    ///   `fixed`) breaks the country rule (placement debt).
    func writeShards(
        objectId: String, segment: Int, generation: Int, policy: PlacementPolicy, shardLength: Int, bodies: [Int: ByteBuffer],
        checksums: [Int: UInt32], fixed: [Int: NodeID], avoiding: Set<NodeID> = []
    ) async throws -> (nodes: [Int: NodeID], placementDebt: Bool) {
        var random = placementRandom.stream("\(objectId)/\(segment)/\(fixed.values.map(\.value).sorted())")
        var avoid = avoiding
        var kept = fixed
        var written: [Int: NodeID] = [:]
        var pending = bodies.keys.sorted()
        var failures: [String] = []
        var attempts = 0
        while !pending.isEmpty, attempts < Limits.shardWriteAttemptsMax {
            let placement = try PlacementPlanner.complete(
                policy: policy, nodes: topology.placementDescriptors(), fixed: kept.merging(written) { a, _ in a },
                shardBytes: Int64(shardLength), avoiding: avoid, using: &random)
            let results = await putShards(
                objectId: objectId, segment: segment, generation: generation, targets: pending.map { ($0, placement.nodes[$0]) },
                bodies: bodies, checksums: checksums)
            var failed: [Int] = []
            var onlyFull = true
            for shard in pending {
                let node = placement.nodes[shard]
                if let error = results[shard] {
                    avoid.insert(node)
                    if error.code == .nodeFull {
                        topology.reportFull(node)
                    } else {
                        topology.reportFailure(node)
                        onlyFull = false
                    }
                    failures.append("shard \(shard) on \(node): \(error)")
                    failed.append(shard)
                } else {
                    written[shard] = node
                }
            }
            pending = failed
            if !onlyFull { attempts += 1 }
        }
        guard pending.isEmpty else {
            throw CoordinatorError(
                .unavailable,
                "segment \(segment) needs \(bodies.count) shards written: \(bodies.count - pending.count) written, "
                    + "\(pending.count) failed (\(failures.joined(separator: "; ")))")
        }
        kept.merge(written) { a, _ in a }
        let total = policy.erasure.totalShards
        let final = Placement(nodes: (0..<total).map { kept[$0]! }, placementDebt: false)
        let debt = !PlacementPlanner.violations(of: final, policy: policy, nodes: topology.descriptors()).isEmpty
        return (written, debt)
    }

    /// Writes shards in parallel; returns each failed shard's error (absent: written).
    func putShards(
        objectId: String, segment: Int, generation: Int, targets: [(Int, NodeID)], bodies: [Int: ByteBuffer], checksums: [Int: UInt32]
    ) async -> [Int: NodeClientError] {
        await withTaskGroup(of: (Int, NodeClientError?).self) { group in
            for (shard, node) in targets {
                group.addTask { [nodes, topology] in
                    guard let member = topology.member(node) else { return (shard, NodeClientError(.notFound, "unknown node")) }
                    do throws(NodeClientError) {
                        try await nodes.put(
                            base: member.url, key: ObjectManifest.shardKey(object: objectId, segment: segment, shard: shard, generation: generation),
                            body: bodies[shard]!, checksum: checksums[shard]!)
                        return (shard, nil)
                    } catch {
                        return (shard, error)
                    }
                }
            }
            var results: [Int: NodeClientError] = [:]
            for await (shard, error) in group { if let error { results[shard] = error } }
            return results
        }
    }

    /// One shard, checked against the manifest's checksum.
    private func fetchShard(_ objectId: String, _ segment: SegmentManifest, _ index: Int) async -> Result<ByteBuffer, CoordinatorError> {
        let location = segment.shards[index]
        guard let member = topology.member(location.node) else {
            return .failure(CoordinatorError(.notFound, "unknown node \(location.node)"))
        }
        var body = shardBuffers.take()
        do {
            _ = try await nodes.get(
                base: member.url, key: segment.shardKey(object: objectId, shard: index), into: &body)
        } catch {
            shardBuffers.give(body)
            // A fetch cancelled because others won the race says nothing about the node.
            if error.code == .unavailable && !Task.isCancelled { topology.reportFailure(location.node) }
            if error.code == .corrupt || error.code == .notFound || error.code == .checksumMismatch {
                await reportSuspect(objectId, segment: segment.index, shard: index, node: location.node)
            }
            return .failure(CoordinatorError(error.code, error.message))
        }
        let actual = body.withUnsafeReadableBytes { CRC32C.checksum($0) }
        guard actual == location.checksum, body.readableBytes == segment.shardLength else {
            shardBuffers.give(body)
            await reportSuspect(objectId, segment: segment.index, shard: index, node: location.node)
            return .failure(CoordinatorError(.corrupt, "shard from \(location.node) does not match the manifest"))
        }
        return .success(body)
    }

    /// Records a shard found corrupt or missing, for the leader's repair to rebuild. Best
    /// effort: a lost report is found again by the next read or the node's scrub.
    func reportSuspect(_ objectId: String, segment: Int, shard: Int, node: NodeID) async {
        guard !Task.isCancelled else { return }
        _ = try? await metadata.put(Keyspace.suspect(node, objectId, segment: segment, shard: shard), [])
    }
}

/// Where placement's randomness comes from: the system's generator, or a seeded one so that
/// a simulation replays the same choices.
public final class RandomSource: Sendable {
    /// The seed given, if any.
    let seed: UInt64?

    /// The system's generator.
    public init() { seed = nil }

    /// SplitMix64 streams from `seed` (see `stream`).
    public init(seed: UInt64) { self.seed = seed }
}

extension RandomSource {
    /// A generator for one decision: the system's, or (seeded) a SplitMix64 stream from the
    /// seed and `key`, so that decisions taken concurrently (repairs of several objects)
    /// draw the same numbers whatever order they run in.
    func stream(_ key: String) -> PlacementRandom {
        guard let seed = self.seed else { return PlacementRandom(seeded: nil) }
        // FNV-1a: stable across processes, unlike `Hasher`.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return PlacementRandom(seeded: SplitMix64(seed: seed ^ hash))
    }
}

/// The seeded stream, or the system's generator.
struct PlacementRandom: RandomNumberGenerator {
    var seeded: SplitMix64?

    mutating func next() -> UInt64 {
        if seeded != nil { return seeded!.next() }
        var system = SystemRandomNumberGenerator()
        return system.next()
    }
}
