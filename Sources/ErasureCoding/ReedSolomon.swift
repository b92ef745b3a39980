public import CoffreModel
import CISAL
import Synchronization

/// A systematic Reed-Solomon codec over GF(2^8), through ISA-L.
///
/// The generator is ISA-L's Cauchy matrix (`gf_gen_cauchy1_matrix`): its top k rows are the
/// identity, so data shards are plain slices of the segment, and every k-row subset is
/// invertible, so any k shards rebuild the rest. Parity and reconstruction both run through
/// `ec_encode_data`, ISA-L's vectorised (AVX-512/GFNI here) table-driven multiply.
///
/// The codec never copies shard bytes: it reads and writes the caller's buffers. Decode
/// tables (an inverted matrix expanded into ISA-L's lookup form) are computed once per
/// erasure pattern and cached, since repair sees the same patterns again and again.
///
/// Thread-safe: encode and reconstruct may run concurrently from any number of threads.
public final class ReedSolomon: Sendable {
    public let policy: ErasurePolicy

    /// (k + m) x k generator matrix, row-major; rows 0..<k are the identity.
    private let generator: [UInt8]
    /// ISA-L tables for the m parity rows.
    private let encodeTables: [UInt8]
    private let decodeCache = Mutex(DecodeTableCache())

    public init(policy: ErasurePolicy) {
        self.policy = policy
        let k = policy.dataShards
        let n = policy.totalShards
        var generator = [UInt8](repeating: 0, count: n * k)
        generator.withUnsafeMutableBufferPointer { gf_gen_cauchy1_matrix($0.baseAddress, Int32(n), Int32(k)) }
        self.generator = generator
        var tables = [UInt8](repeating: 0, count: max(1, k * policy.parityShards * 32))
        if policy.parityShards > 0 {
            tables.withUnsafeMutableBufferPointer { t in
                generator.withUnsafeBufferPointer { g in
                    ec_init_tables(
                        Int32(k), Int32(policy.parityShards),
                        UnsafeMutablePointer(mutating: g.baseAddress! + k * k), t.baseAddress)
                }
            }
        }
        self.encodeTables = tables
    }

    /// Convenience for a policy given as numbers.
    public convenience init(dataShards: Int, parityShards: Int) throws(ModelError) {
        self.init(policy: try ErasurePolicy(dataShards: dataShards, parityShards: parityShards))
    }

    /// Computes the m parity shards of k data shards.
    ///
    /// - Parameters:
    ///   - data: k buffers of equal length (the shard length).
    ///   - parity: m buffers of that same length, overwritten.
    public func encode(
        data: [UnsafeRawBufferPointer], parity: [UnsafeMutableRawBufferPointer]
    ) throws(ErasureCodingError) {
        let length = try checkedShardLength(data.map(\.count) + parity.map(\.count))
        guard data.count == policy.dataShards, parity.count == policy.parityShards else {
            throw ErasureCodingError(
                .invalidArgument,
                "\(policy) encode needs \(policy.dataShards) data and \(policy.parityShards) "
                    + "parity buffers, got \(data.count) and \(parity.count)")
        }
        guard length > 0, policy.parityShards > 0 else { return }
        var sources = data.map { UnsafeMutablePointer(mutating: $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) as UnsafeMutablePointer<UInt8>? }
        var outputs = parity.map { $0.baseAddress!.assumingMemoryBound(to: UInt8.self) as UnsafeMutablePointer<UInt8>? }
        encodeTables.withUnsafeBufferPointer { tables in
            ec_encode_data(
                Int32(length), Int32(policy.dataShards), Int32(policy.parityShards),
                UnsafeMutablePointer(mutating: tables.baseAddress), &sources, &outputs)
        }
    }

    /// Encodes a whole segment laid out contiguously, shard after shard.
    ///
    /// - Parameters:
    ///   - segment: k x `shardLength` bytes: the data shards, already padded (see
    ///     `SegmentLayout`). Each data shard is a slice of it; nothing is copied.
    ///   - parity: m x `shardLength` bytes, overwritten with the parity shards.
    public func encode(
        segment: UnsafeRawBufferPointer, parity: UnsafeMutableRawBufferPointer, shardLength: Int
    ) throws(ErasureCodingError) {
        guard segment.count == shardLength * policy.dataShards,
            parity.count == shardLength * policy.parityShards
        else {
            throw ErasureCodingError(
                .invalidArgument,
                "\(policy) segment of \(segment.count) B and parity of \(parity.count) B do not "
                    + "match a shard length of \(shardLength) B")
        }
        guard shardLength > 0 else { return }
        let data = (0..<policy.dataShards).map {
            UnsafeRawBufferPointer(rebasing: segment[($0 * shardLength)..<(($0 + 1) * shardLength)])
        }
        let outputs = (0..<policy.parityShards).map {
            UnsafeMutableRawBufferPointer(rebasing: parity[($0 * shardLength)..<(($0 + 1) * shardLength)])
        }
        try encode(data: data, parity: outputs)
    }

    /// Rebuilds missing shards in place from any k present ones.
    ///
    /// - Parameters:
    ///   - shards: k + m buffers of equal length, indexed by shard number (data 0..<k, then
    ///     parity). Buffers of present shards are read; buffers of missing shards are
    ///     overwritten with their rebuilt content.
    ///   - present: which shard numbers hold valid data. At least k must be present.
    ///   - wanted: the missing shards to rebuild (nil: every missing one). Repair asks for
    ///     only the shards it lost, so the others cost nothing; their buffers are untouched.
    /// - Throws: `tooFewShards` with fewer than k present shards; nothing is written then.
    public func reconstruct(
        shards: [UnsafeMutableRawBufferPointer], present: Set<Int>, wanted: Set<Int>? = nil
    ) throws(ErasureCodingError) {
        let length = try checkedShardLength(shards.map(\.count))
        let k = policy.dataShards
        guard shards.count == policy.totalShards else {
            throw ErasureCodingError(
                .invalidArgument,
                "\(policy) reconstruct needs \(policy.totalShards) buffers, got \(shards.count)")
        }
        guard present.allSatisfy({ (0..<policy.totalShards).contains($0) }) else {
            throw ErasureCodingError(.invalidArgument, "present shard numbers must be 0..<\(policy.totalShards)")
        }
        guard present.count >= k else {
            throw ErasureCodingError(
                .tooFewShards,
                "\(policy) needs \(k) shards to reconstruct, only \(present.count) present "
                    + "(\(present.sorted()))")
        }
        if let wanted, !wanted.allSatisfy({ (0..<policy.totalShards).contains($0) }) {
            throw ErasureCodingError(.invalidArgument, "wanted shard numbers must be 0..<\(policy.totalShards)")
        }
        let missing = (0..<policy.totalShards).filter { !present.contains($0) && (wanted?.contains($0) ?? true) }
        guard !missing.isEmpty, length > 0 else { return }
        // Lowest-numbered present shards first: data shards when they are there, so the
        // submatrix is mostly identity.
        let sourceIndices = Array(present.sorted().prefix(k))
        let tables = try decodeTables(sources: sourceIndices, missing: missing)
        var sources = sourceIndices.map { shards[$0].baseAddress!.assumingMemoryBound(to: UInt8.self) as UnsafeMutablePointer<UInt8>? }
        var outputs = missing.map { shards[$0].baseAddress!.assumingMemoryBound(to: UInt8.self) as UnsafeMutablePointer<UInt8>? }
        tables.withUnsafeBufferPointer { t in
            ec_encode_data(
                Int32(length), Int32(k), Int32(missing.count),
                UnsafeMutablePointer(mutating: t.baseAddress), &sources, &outputs)
        }
    }

    /// Number of erasure patterns whose decode tables are cached (for tests and status).
    public var cachedDecodeTables: Int { decodeCache.withLock { $0.count } }

    // MARK: - Private

    private func checkedShardLength(_ lengths: [Int]) throws(ErasureCodingError) -> Int {
        guard let first = lengths.first, lengths.allSatisfy({ $0 == first }) else {
            throw ErasureCodingError(.invalidArgument, "shard buffers differ in length: \(Set(lengths).sorted())")
        }
        guard first <= Limits.shardSizeMax else {
            throw ErasureCodingError(
                .limitExceeded, "shard of \(ByteCount(first)) exceeds \(ByteCount(Limits.shardSizeMax))")
        }
        return first
    }

    private func decodeTables(sources: [Int], missing: [Int]) throws(ErasureCodingError) -> [UInt8] {
        let key = DecodeTableCache.Key(sources: sources, missing: missing)
        if let cached = decodeCache.withLock({ $0.lookup(key) }) { return cached }
        let tables = try computeDecodeTables(sources: sources, missing: missing)
        decodeCache.withLock { $0.insert(tables, for: key) }
        return tables
    }

    /// Rows that turn the k source shards into the missing ones, expanded for ISA-L.
    private func computeDecodeTables(sources: [Int], missing: [Int]) throws(ErasureCodingError) -> [UInt8] {
        let k = policy.dataShards
        // B: the generator rows of the sources. Its inverse maps sources back to data.
        var submatrix = [UInt8](repeating: 0, count: k * k)
        for (row, index) in sources.enumerated() {
            for column in 0..<k { submatrix[row * k + column] = generator[index * k + column] }
        }
        var inverse = [UInt8](repeating: 0, count: k * k)
        let status = submatrix.withUnsafeMutableBufferPointer { b in
            inverse.withUnsafeMutableBufferPointer { gf_invert_matrix(b.baseAddress, $0.baseAddress, Int32(k)) }
        }
        // A Cauchy generator makes every k-row subset invertible; anything else is a bug.
        precondition(status == 0, "Cauchy submatrix not invertible: sources \(sources)")
        var rows = [UInt8](repeating: 0, count: missing.count * k)
        for (row, index) in missing.enumerated() {
            for column in 0..<k {
                if index < k {
                    rows[row * k + column] = inverse[index * k + column]
                } else {
                    // Parity row times the inverse: data = inverse * sources, parity = g * data.
                    var sum: UInt8 = 0
                    for j in 0..<k { sum ^= gf_mul(generator[index * k + j], inverse[j * k + column]) }
                    rows[row * k + column] = sum
                }
            }
        }
        var tables = [UInt8](repeating: 0, count: k * missing.count * 32)
        rows.withUnsafeMutableBufferPointer { r in
            tables.withUnsafeMutableBufferPointer {
                ec_init_tables(Int32(k), Int32(missing.count), r.baseAddress, $0.baseAddress)
            }
        }
        return tables
    }
}

/// A bounded cache of decode tables keyed by erasure pattern, evicting the oldest entry.
struct DecodeTableCache {
    struct Key: Hashable {
        var sources: UInt64
        var missing: UInt64

        init(sources: [Int], missing: [Int]) {
            self.sources = sources.reduce(0) { $0 | (1 << UInt64($1)) }
            self.missing = missing.reduce(0) { $0 | (1 << UInt64($1)) }
        }
    }

    private var tables: [Key: [UInt8]] = [:]
    private var order: [Key] = []

    var count: Int { tables.count }

    func lookup(_ key: Key) -> [UInt8]? { tables[key] }

    mutating func insert(_ value: [UInt8], for key: Key) {
        guard tables[key] == nil else { return }
        if order.count >= Limits.decodeTablesCachedMax {
            tables[order.removeFirst()] = nil
        }
        tables[key] = value
        order.append(key)
    }
}
