import AESGCM
import CCryptoBoringSSL
import CISAL
import CBenchBaselines
import Checksum
import CoffreModel
import DirectIO
import Crypto
import Encryption
import ErasureCoding
import Foundation
import ShardStore

/// The core benchmarks of issue 2: codec, file format, shard store, each against raw C.
struct CoreBenchmarks {
    let rounds: Int
    let quick: Bool
    let filter: String
    let directory: String?

    func runAll() throws {
        if selected("erasure") { try erasure() }
        if selected("crypto") { try crypto() }
        if selected("checksum") { checksum() }
        if selected("shardstore") { try shardStore() }
    }

    private func selected(_ group: String) -> Bool {
        filter.isEmpty || group.hasPrefix(filter) || filter.hasPrefix(group)
    }

    // MARK: - Reed-Solomon

    private func erasure() throws {
        for (k, m) in [(6, 3), (8, 4)] {
            try erasure(k: k, m: m)
        }
    }

    /// Encode and reconstruct with 1 MiB shards, cycling over 8 segments (72+ MiB, more
    /// than the caches hold), so both sides read their input from memory as a coordinator
    /// does with segments fresh from the network.
    private func erasure(k: Int, m: Int) throws {
        let shardLength = 1 << 20
        let sets = 8
        let codec = try ReedSolomon(dataShards: k, parityShards: m)
        let memory = filledBuffer(sets * (k + m) * shardLength)
        defer { memory.deallocate() }
        let shards: [[UnsafeMutableRawBufferPointer]] = (0..<sets).map { set in
            (0..<(k + m)).map {
                let start = (set * (k + m) + $0) * shardLength
                return UnsafeMutableRawBufferPointer(rebasing: memory[start..<(start + shardLength)])
            }
        }
        let calls = quick ? 16 : 64
        let bytesPerCall = Double(k * shardLength)
        func pointers(_ buffers: ArraySlice<UnsafeMutableRawBufferPointer>) -> UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?> {
            let array = UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>.allocate(capacity: buffers.count)
            for (i, buffer) in buffers.enumerated() { array[i] = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self) }
            return array
        }

        // Raw ISA-L: the same matrix and tables, built once, then a plain C loop.
        var matrix = [UInt8](repeating: 0, count: (k + m) * k)
        gf_gen_cauchy1_matrix(&matrix, Int32(k + m), Int32(k))
        var encodeTables = [UInt8](repeating: 0, count: k * m * 32)
        matrix.withUnsafeMutableBufferPointer { ec_init_tables(Int32(k), Int32(m), $0.baseAddress! + k * k, &encodeTables) }
        var dataSets = shards.map { pointers($0[..<k]) as UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>? }
        var paritySets = shards.map { pointers($0[k...]) as UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>? }
        defer { (dataSets + paritySets).forEach { $0?.deallocate() } }
        compare(
            "erasure.encode.rs\(k)+\(m)", unit: "GB/s", scale: 1e9, rounds: rounds,
            ours: {
                for call in 0..<calls {
                    let set = shards[call % sets]
                    let segment = UnsafeRawBufferPointer(start: set[0].baseAddress, count: k * shardLength)
                    let parity = UnsafeMutableRawBufferPointer(start: set[k].baseAddress, count: m * shardLength)
                    try! codec.encode(segment: segment, parity: parity, shardLength: shardLength)
                }
                return bytesPerCall * Double(calls)
            },
            baseline: {
                coffre_bench_isal_encode(
                    Int32(shardLength), Int32(k), Int32(m), &encodeTables, &dataSets, &paritySets, Int32(sets), Int32(calls))
                return bytesPerCall * Double(calls)
            })

        // Reconstruct the m lost data shards 0..<m (the costliest case: data shards rebuilt
        // through the inverse) from shards m..<k+m.
        let lost = Array(0..<m)
        let present = Set(m..<(k + m))
        var submatrix = [UInt8](repeating: 0, count: k * k)
        for (row, index) in present.sorted().enumerated() {
            for column in 0..<k { submatrix[row * k + column] = matrix[index * k + column] }
        }
        var inverse = [UInt8](repeating: 0, count: k * k)
        precondition(gf_invert_matrix(&submatrix, &inverse, Int32(k)) == 0)
        var decodeRows = [UInt8](repeating: 0, count: m * k)
        for (row, index) in lost.enumerated() {
            for column in 0..<k { decodeRows[row * k + column] = inverse[index * k + column] }
        }
        var decodeTables = [UInt8](repeating: 0, count: k * m * 32)
        ec_init_tables(Int32(k), Int32(m), &decodeRows, &decodeTables)
        var sourceSets = shards.map { pointers($0[m...]) as UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>? }
        var lostSets = shards.map { pointers($0[..<m]) as UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>? }
        defer { (sourceSets + lostSets).forEach { $0?.deallocate() } }
        compare(
            "erasure.reconstruct.rs\(k)+\(m)", unit: "GB/s", scale: 1e9, rounds: rounds,
            ours: {
                for call in 0..<calls { try! codec.reconstruct(shards: shards[call % sets], present: present) }
                return bytesPerCall * Double(calls)
            },
            baseline: {
                coffre_bench_isal_encode(
                    Int32(shardLength), Int32(k), Int32(m), &decodeTables, &sourceSets, &lostSets, Int32(sets), Int32(calls))
                return bytesPerCall * Double(calls)
            })
    }

    // MARK: - File format and AES-GCM

    private func crypto() throws {
        let size = quick ? 32 << 20 : 256 << 20
        let chunk = FileFormat.chunkSize
        let plaintext = filledBuffer(size)
        let sealed = UnsafeMutableRawBufferPointer.allocate(
            byteCount: FileEncryptor.sealedLength(plaintextCount: size, isFinal: true), alignment: 4096)
        let opened = UnsafeMutableRawBufferPointer.allocate(byteCount: sealed.count, alignment: 4096)
        defer {
            plaintext.deallocate()
            sealed.deallocate()
            opened.deallocate()
        }
        let fileKey = FileKey.random()
        let rawKey = secureRandomBytes(32)
        let boring = CCryptoBoringSSL_EVP_AEAD_CTX_new(CCryptoBoringSSL_EVP_aead_aes_256_gcm(), rawKey, 32, 16)!
        defer { CCryptoBoringSSL_EVP_AEAD_CTX_free(boring) }
        let chunks = (size + chunk - 1) / chunk
        var nonce = [UInt8](repeating: 0, count: 12)

        /// The primitive alone: one AEAD context, a counter nonce, chunk after chunk.
        func rawSeal() -> Double {
            for i in 0..<chunks {
                nonce[10] = UInt8(truncatingIfNeeded: i)
                nonce[9] = UInt8(truncatingIfNeeded: i >> 8)
                let count = min(chunk, size - i * chunk)
                var written = 0
                precondition(CCryptoBoringSSL_EVP_AEAD_CTX_seal(
                    boring, sealed.baseAddress!.assumingMemoryBound(to: UInt8.self) + i * (chunk + 16), &written, chunk + 16,
                    nonce, 12, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self) + i * chunk, count, nil, 0) == 1)
            }
            return Double(size)
        }
        func rawOpen() -> Double {
            for i in 0..<chunks {
                nonce[10] = UInt8(truncatingIfNeeded: i)
                nonce[9] = UInt8(truncatingIfNeeded: i >> 8)
                let count = min(chunk, size - i * chunk)
                var written = 0
                precondition(CCryptoBoringSSL_EVP_AEAD_CTX_open(
                    boring, opened.baseAddress!.assumingMemoryBound(to: UInt8.self) + i * chunk, &written, chunk,
                    nonce, 12, sealed.baseAddress!.assumingMemoryBound(to: UInt8.self) + i * (chunk + 16), count + 16, nil, 0) == 1)
            }
            return Double(size)
        }

        compare(
            "crypto.encrypt", unit: "GB/s", scale: 1e9, rounds: rounds,
            ours: {
                var encryptor = try! FileEncryptor(fileKey: fileKey)
                _ = encryptor.seal(UnsafeRawBufferPointer(plaintext), isFinal: true, into: sealed)
                return Double(size)
            },
            baseline: rawSeal)

        try decryptAgainstRaw(size: size, fileKey: fileKey, rawSeal: rawSeal, rawOpen: rawOpen, sealed: sealed, opened: opened, plaintext: plaintext)

        // The primitive we chose (BoringSSL's VAES AES-GCM) against Debian's OpenSSL 3.0.
        compare(
            "crypto.aesgcm.raw", unit: "GB/s", scale: 1e9, rounds: rounds,
            ours: rawSeal,
            baseline: {
                precondition(coffre_bench_openssl_gcm_seal(
                    rawKey, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), size, chunk,
                    sealed.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0)
                return Double(size)
            })

        // Why the wrapper exists: swift-crypto's public API on the same chunks.
        let swiftKey = SymmetricKey(data: rawKey)
        compare(
            "crypto.aesgcm.swift-crypto-api", unit: "GB/s", scale: 1e9, rounds: rounds,
            ours: {
                var sum = 0
                for i in 0..<chunks {
                    nonce[10] = UInt8(truncatingIfNeeded: i)
                    let count = min(chunk, size - i * chunk)
                    let box = try! AES.GCM.seal(
                        UnsafeRawBufferPointer(rebasing: plaintext[(i * chunk)..<(i * chunk + count)]),
                        using: swiftKey, nonce: AES.GCM.Nonce(data: nonce))
                    sum &+= Int(box.tag.first!)
                }
                return Double(size + (sum & 0))
            },
            baseline: rawSeal)
    }

    private func decryptAgainstRaw(
        size: Int, fileKey: FileKey, rawSeal: () -> Double, rawOpen: () -> Double,
        sealed: UnsafeMutableRawBufferPointer, opened: UnsafeMutableRawBufferPointer, plaintext: UnsafeMutableRawBufferPointer
    ) throws {
        // Two ciphertexts of the same plaintext, one per side, so both open their own.
        let ourSealed = UnsafeMutableRawBufferPointer.allocate(byteCount: sealed.count, alignment: 4096)
        defer { ourSealed.deallocate() }
        var encryptor = try FileEncryptor(fileKey: fileKey)
        let ourHeader = encryptor.header.bytes
        _ = encryptor.seal(UnsafeRawBufferPointer(plaintext), isFinal: true, into: ourSealed)
        _ = rawSeal()
        compare(
            "crypto.decrypt", unit: "GB/s", scale: 1e9, rounds: rounds,
            ours: {
                var decryptor = try! ourHeader.withUnsafeBytes { try FileDecryptor(fileKey: fileKey, header: $0) }
                _ = try! decryptor.open(UnsafeRawBufferPointer(ourSealed), isFinal: true, into: opened)
                return Double(size)
            },
            baseline: rawOpen)
        precondition(memcmp(opened.baseAddress!, plaintext.baseAddress!, size) == 0, "decryption is wrong")
    }

    // MARK: - CRC-32C

    private func checksum() {
        let size = quick ? 16 << 20 : 128 << 20
        let buffer = filledBuffer(size)
        defer { buffer.deallocate() }
        var sink: UInt32 = 0
        compare(
            "checksum.crc32c", unit: "GB/s", scale: 1e9, rounds: rounds,
            ours: {
                sink ^= CRC32C.checksum(UnsafeRawBufferPointer(buffer))
                return Double(size)
            },
            baseline: {
                sink ^= crc32_iscsi(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(size), 0xFFFF_FFFF)
                return Double(size)
            })
        if sink == 0x1234_5678 { print("") }
    }

    // MARK: - Shard store

    private func shardStore() throws {
        let root = directory ?? NSTemporaryDirectory() + "coffre-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: root) } }
        for engine in ShardStoreEngine.allCases {
            let suffix = engine == .files ? "" : "." + engine.rawValue
            try shardStore(root: root + "/" + engine.rawValue, engine: engine, suffix: suffix)
        }
    }

    private func shardStore(root: String, engine: ShardStoreEngine, suffix: String) throws {
        let shardSize = 4 << 20
        let count = quick ? 8 : 32
        let body = filledBuffer(shardSize)
        defer { body.deallocate() }
        // The raw baselines use direct I/O as the store does (DirectIO): an aligned copy of the body.
        let alignedBody = UnsafeMutableRawBufferPointer.allocate(byteCount: shardSize, alignment: DirectIO.alignment)
        alignedBody.copyMemory(from: UnsafeRawBufferPointer(body))
        defer { alignedBody.deallocate() }
        let checksum = CRC32C.checksum(UnsafeRawBufferPointer(body))
        let store = try ShardStore(path: root + "/store", durability: .synced, engine: engine)
        let filesFolder = root + "/files"
        try FileManager.default.createDirectory(atPath: filesFolder, withIntermediateDirectories: true)
        let keys = try (0..<count).map { try ShardKey("bench/\($0)") }

        compare(
            "shardstore.put" + suffix, unit: "MB/s", scale: 1e6, rounds: rounds,
            ours: {
                for key in keys { try! store.put(key, body: UnsafeRawBufferPointer(body), checksum: checksum) }
                return Double(count * shardSize)
            },
            baseline: {
                // Same durability: every shard is on stable storage when the call returns.
                for i in 0..<count {
                    let fd = open("\(filesFolder)/\(i)", O_WRONLY | O_CREAT | O_TRUNC | DirectIO.flag, 0o644)
                    precondition(fd >= 0)
                    var written = 0
                    while written < shardSize {
                        let n = write(fd, alignedBody.baseAddress! + written, shardSize - written)
                        precondition(n > 0)
                        written += n
                    }
                    precondition(fdatasync(fd) == 0)
                    close(fd)
                }
                return Double(count * shardSize)
            })

        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: shardSize, alignment: 4096)
        defer { readBuffer.deallocate() }
        var sink = 0
        compare(
            "shardstore.get" + suffix, unit: "MB/s", scale: 1e6, rounds: rounds,
            ours: {
                // Into a reused buffer, as a node serving reads does; checksum verified.
                for key in keys { sink &+= Int(try! store.get(key, into: readBuffer).length) }
                return Double(count * shardSize)
            },
            baseline: {
                for i in 0..<count {
                    let fd = open("\(filesFolder)/\(i)", O_RDONLY | DirectIO.flag)
                    precondition(fd >= 0)
                    var total = 0
                    while total < shardSize {
                        let n = read(fd, readBuffer.baseAddress! + total, shardSize - total)
                        precondition(n > 0)
                        total += n
                    }
                    close(fd)
                    sink &+= total
                }
                return Double(count * shardSize)
            })
        if sink == 1 { print("") }
    }
}
