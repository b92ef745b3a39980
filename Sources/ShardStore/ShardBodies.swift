import Checksum
import CoffreModel
import DirectIO
import Foundation
import RocksDB

#if canImport(Glibc)
import Glibc
#endif

/// Where shard bodies live. The store's records (checksum, length) are always in RocksDB.
public enum ShardStoreEngine: String, Sendable, Codable, CaseIterable {
    /// One file per shard body, written with direct I/O + `fdatasync` and renamed into place;
    /// RocksDB holds only the records. The default: see Docs/architecture.md ("Shard store")
    /// for why, with the measurements.
    case files
    /// Bodies as RocksDB values in blob files (key-value separation), written in the same
    /// batch as their records. Simpler, but every byte goes through RocksDB's write-ahead log
    /// and again into a blob file, with Debian's software CRC-32C on both.
    case rocksdbBlobs = "rocksdb-blobs"
}

/// Bytes of a shard read from the store, in memory the store allocated.
final class ShardBytes: @unchecked Sendable {
    private enum Storage {
        case rocks(RocksValue)
        case heap(UnsafeMutableRawBufferPointer)
    }

    private let storage: Storage
    /// Bytes of the shard; a heap buffer may be longer (rounded up for direct I/O).
    let count: Int

    init(_ value: RocksValue) {
        storage = .rocks(value)
        count = value.count
    }

    init(heap: UnsafeMutableRawBufferPointer, count: Int) {
        precondition(count <= heap.count)
        storage = .heap(heap)
        self.count = count
    }

    deinit {
        if case .heap(let buffer) = storage { buffer.deallocate() }
    }

    func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        switch storage {
        case .rocks(let value): try value.withUnsafeBytes(body)
        case .heap(let buffer): try body(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
    }
}

/// Body files: `<root>/bodies/<xx>/<hex of key>`, `xx` the low byte of the key's CRC-32C, so
/// no folder grows past 1/256 of the shards.
struct BodyFiles: Sendable {
    let root: String

    init(root: String) throws(ShardStoreError) {
        self.root = root
        guard mkdir(root, 0o755) == 0 || errno == EEXIST else {
            throw ShardStoreError(.storageFailure, "cannot create \(root): \(String(cString: strerror(errno)))")
        }
        for index in 0..<256 {
            let folder = root + "/" + Self.hexByte(UInt8(index))
            guard mkdir(folder, 0o755) == 0 || errno == EEXIST else {
                throw ShardStoreError(.storageFailure, "cannot create \(folder): \(String(cString: strerror(errno)))")
            }
        }
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    func folder(_ key: ShardKey) -> String {
        root + "/" + Self.hexByte(UInt8(truncatingIfNeeded: CRC32C.checksum(key.bytes)))
    }

    func path(_ key: ShardKey) -> String { folder(key) + "/" + Hex.encode(key.bytes) }

    /// Writes the body durably: to a temporary file, `fdatasync`, rename into place, then
    /// `fsync` of the folder so the rename itself survives power loss.
    ///
    /// With direct I/O where the file system allows it (`DirectIO`: buffered writes cost
    /// 1–4 ns per byte of kernel CPU here, and a node's page cache is of little use for
    /// shards).
    func write(_ key: ShardKey, _ body: UnsafeRawBufferPointer, sync: Bool) throws(ShardStoreError) {
        let final = path(key)
        let temporary = final + ".tmp"
        do throws(FileIOError) {
            // An aligned body goes to the disk from where it is; only its tail needs the
            // bounce buffer.
            let blockSize = DirectIO.isAligned(body.baseAddress)
                ? DirectIO.alignment : min(Limits.shardDirectWriteBlockSize, DirectIO.roundUp(max(body.count, 1)))
            let writer = try SequentialFileWriter(creating: temporary, blockSize: blockSize)
            do {
                try writer.write(body)
                try writer.finish(sync: sync)
            } catch {
                writer.discard()
                unlink(temporary)
                throw error
            }
        } catch {
            throw ShardStoreError(error.code, error.message)
        }
        guard rename(temporary, final) == 0 else { throw failure("rename \(temporary)") }
        if sync { try syncFolder(folder(key)) }
    }

    /// Reads a body into new memory; nil when the file does not exist.
    ///
    /// With direct I/O where the file system allows it, for the reasons given at `write`.
    func read(_ key: ShardKey, expectedLength: Int) throws(ShardStoreError) -> ShardBytes? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: DirectIO.roundUp(max(expectedLength, 1)), alignment: DirectIO.alignment)
        do {
            guard try read(key, into: buffer, length: expectedLength) else {
                buffer.deallocate()
                return nil
            }
        } catch {
            buffer.deallocate()
            throw error
        }
        return ShardBytes(heap: buffer, count: expectedLength)
    }

    /// Reads a body into `buffer`, which must be exactly the recorded length. False when the
    /// file does not exist; `corrupt` when its length differs.
    func read(_ key: ShardKey, into buffer: UnsafeMutableRawBufferPointer) throws(ShardStoreError) -> Bool {
        try read(key, into: buffer, length: buffer.count)
    }

    /// Reads a body of `length` bytes into the start of `buffer`. Direct I/O is used when
    /// `buffer` is aligned and long enough for the rounded-up length (reads past the end of
    /// the file come back short, which is how the exact length is checked).
    func read(_ key: ShardKey, into buffer: UnsafeMutableRawBufferPointer, length: Int) throws(ShardStoreError) -> Bool {
        let file = path(key)
        let aligned = DirectIO.isAligned(buffer.baseAddress) && buffer.count >= DirectIO.roundUp(length)
        var direct = aligned && length > 0
        var fd = Glibc.open(file, O_RDONLY | O_CLOEXEC | (direct ? DirectIO.flag : 0))
        if fd < 0 && errno == EINVAL && direct {
            direct = false
            fd = open(file, O_RDONLY | O_CLOEXEC)
        }
        if fd < 0 && errno == ENOENT { return false }
        guard fd >= 0 else { throw failure("open \(file)") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw failure("stat \(file)") }
        guard Int(status.st_size) == length else {
            throw ShardStoreError(.corrupt, "shard \(key): body file of \(status.st_size) B, record says \(length) B")
        }
        let wanted = direct ? DirectIO.roundUp(length) : length
        var total = 0
        while total < length {
            let n = pread(fd, buffer.baseAddress! + total, wanted - total, off_t(total))
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw ShardStoreError(.corrupt, "shard \(key): body file shrank to \(total) B while read, record says \(length) B") }
            guard n > 0 else { throw failure("read \(file)") }
            total += n
        }
        guard total == length else {
            throw ShardStoreError(.corrupt, "shard \(key): body file grew to \(total) B while read, record says \(length) B")
        }
        return true
    }

    func remove(_ key: ShardKey) throws(ShardStoreError) {
        guard unlink(path(key)) == 0 || errno == ENOENT else { throw failure("unlink \(path(key))") }
    }

    /// Bytes of all body files.
    func totalBytes() -> Int64 {
        var total: Int64 = 0
        for index in 0..<256 {
            let folder = root + "/" + Self.hexByte(UInt8(index))
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                var status = stat()
                if stat(folder + "/" + name, &status) == 0 { total += Int64(status.st_size) }
            }
        }
        return total
    }

    /// Names (hex keys) of body files in one fan-out folder, and leftover temporary files.
    func listFolder(_ index: UInt8) -> (bodies: [String], temporaries: [String]) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + Self.hexByte(index))) ?? []
        return (names.filter { !$0.hasSuffix(".tmp") }, names.filter { $0.hasSuffix(".tmp") })
    }

    func removeFile(folder index: UInt8, name: String) {
        unlink(root + "/" + Self.hexByte(index) + "/" + name)
    }

    private func syncFolder(_ folder: String) throws(ShardStoreError) {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open \(folder)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw failure("fsync \(folder)") }
    }

    private func failure(_ operation: String) -> ShardStoreError {
        ShardStoreError(errno == ENOSPC ? .nodeFull : .storageFailure, "\(operation): \(String(cString: strerror(errno)))")
    }
}
