import CoffreModel
import ErasureCoding
import Testing
import TestSupport

/// Encodes `segment` under `codec`, returning k + m shards as arrays.
func encodeShards(_ codec: ReedSolomon, segment: [UInt8]) throws -> [[UInt8]] {
    let layout = SegmentLayout(policy: codec.policy, segmentLength: segment.count)
    var padded = segment + [UInt8](repeating: 0, count: layout.paddingLength)
    var parity = [UInt8](repeating: 0, count: layout.shardLength * codec.policy.parityShards)
    try padded.withUnsafeMutableBytes { data in
        try parity.withUnsafeMutableBytes { p in
            try codec.encode(segment: UnsafeRawBufferPointer(data), parity: p, shardLength: layout.shardLength)
        }
    }
    let all = padded + parity
    return (0..<codec.policy.totalShards).map {
        Array(all[($0 * layout.shardLength)..<(($0 + 1) * layout.shardLength)])
    }
}

/// Rebuilds the shards not in `present` (their content is overwritten first).
func reconstruct(_ codec: ReedSolomon, shards: [[UInt8]], present: Set<Int>) throws -> [[UInt8]] {
    let length = shards.first?.count ?? 0
    let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, length * shards.count), alignment: 64)
    defer { memory.deallocate() }
    let buffers = shards.indices.map {
        UnsafeMutableRawBufferPointer(rebasing: memory[($0 * length)..<(($0 + 1) * length)])
    }
    for (index, shard) in shards.enumerated() {
        if present.contains(index) {
            shard.withUnsafeBytes { buffers[index].copyMemory(from: $0) }
        } else {
            buffers[index].initializeMemory(as: UInt8.self, repeating: 0xAA)
        }
    }
    try codec.reconstruct(shards: buffers, present: present)
    return buffers.map { Array(UnsafeRawBufferPointer($0)) }
}

@Suite struct ReedSolomonTests {
    @Test func isSystematic() throws {
        let codec = try ReedSolomon(dataShards: 6, parityShards: 3)
        let segment = (0..<600).map { UInt8(truncatingIfNeeded: $0) }
        let shards = try encodeShards(codec, segment: segment)
        #expect(Array(shards[0..<6].joined()) == segment)
        #expect(shards.count == 9)
    }

    @Test func rebuildsEveryPatternOfRS6x3() throws {
        let codec = try ReedSolomon(dataShards: 6, parityShards: 3)
        var random = SeededGenerator(seed: 1)
        let segment = random.bytes(6 * 1000 + 5)
        let shards = try encodeShards(codec, segment: segment)
        // Every subset of up to 3 lost shards out of 9.
        for mask in 0..<(1 << 9) where mask.nonzeroBitCount <= 3 {
            let present = Set((0..<9).filter { mask & (1 << $0) == 0 })
            let rebuilt = try reconstruct(codec, shards: shards, present: present)
            #expect(rebuilt == shards, "lost \((0..<9).filter { mask & (1 << $0) != 0 })")
        }
        #expect(codec.cachedDecodeTables <= Limits.decodeTablesCachedMax)
    }

    @Test func randomPoliciesLengthsAndErasures() throws {
        let seed = SeededGenerator.seedFromEnvironment()
        var random = SeededGenerator(seed: seed)
        for round in 0..<60 {
            let k = Int.random(in: 1...20, using: &random)
            let m = Int.random(in: 0...min(12, Limits.shardsMax - k), using: &random)
            let length = [0, 1, 2, k, k + 1, 4097, Int.random(in: 0...200_000, using: &random)].randomElement(using: &random)!
            let codec = try ReedSolomon(dataShards: k, parityShards: m)
            let segment = random.bytes(length)
            let shards = try encodeShards(codec, segment: segment)
            let lost = Set((0..<(k + m)).shuffled(using: &random).prefix(Int.random(in: 0...m, using: &random)))
            let present = Set(0..<(k + m)).subtracting(lost)
            let rebuilt = try reconstruct(codec, shards: shards, present: present)
            #expect(rebuilt == shards, "seed \(seed) round \(round): RS(\(k),\(m)) length \(length) lost \(lost.sorted())")
            #expect(Array(rebuilt[0..<k].joined().prefix(length)) == segment, "seed \(seed) round \(round)")
        }
    }

    @Test(arguments: [(20, 12), (16, 16), (48, 16), (1, 1), (1, 0), (10, 4)])
    func largePoliciesWork(k: Int, m: Int) throws {
        let codec = try ReedSolomon(dataShards: k, parityShards: m)
        var random = SeededGenerator(seed: UInt64(k * 100 + m))
        let shards = try encodeShards(codec, segment: random.bytes(k * 64 + 3))
        let lost = Set((0..<(k + m)).shuffled(using: &random).prefix(m))
        let present = Set(0..<(k + m)).subtracting(lost)
        #expect(try reconstruct(codec, shards: shards, present: present) == shards)
    }

    @Test func fewerThanKShardsIsAClearError() throws {
        let codec = try ReedSolomon(dataShards: 6, parityShards: 3)
        let shards = try encodeShards(codec, segment: [UInt8](repeating: 1, count: 60))
        #expect {
            try reconstruct(codec, shards: shards, present: [0, 1, 2, 3, 4])
        } throws: { error in
            let error = error as? ErasureCodingError
            return error?.code == .tooFewShards && error!.message.contains("needs 6 shards")
        }
    }

    @Test func refusesMismatchedBuffers() throws {
        let codec = try ReedSolomon(dataShards: 2, parityShards: 1)
        var a = [UInt8](repeating: 1, count: 10)
        var b = [UInt8](repeating: 2, count: 11)
        var p = [UInt8](repeating: 0, count: 10)
        a.withUnsafeMutableBytes { a in
            b.withUnsafeMutableBytes { b in
                p.withUnsafeMutableBytes { p in
                    #expect(throws: ErasureCodingError.self) {
                        try codec.encode(data: [UnsafeRawBufferPointer(a), UnsafeRawBufferPointer(b)], parity: [p])
                    }
                    #expect(throws: ErasureCodingError.self) {
                        try codec.encode(data: [UnsafeRawBufferPointer(a)], parity: [p])
                    }
                }
            }
        }
    }

    @Test func decodeTablesAreCachedPerPattern() throws {
        let codec = try ReedSolomon(dataShards: 4, parityShards: 2)
        let shards = try encodeShards(codec, segment: [UInt8](repeating: 9, count: 400))
        _ = try reconstruct(codec, shards: shards, present: [0, 1, 2, 4])
        _ = try reconstruct(codec, shards: shards, present: [0, 1, 2, 4])
        #expect(codec.cachedDecodeTables == 1)
        _ = try reconstruct(codec, shards: shards, present: [1, 2, 4, 5])
        #expect(codec.cachedDecodeTables == 2)
    }
}
