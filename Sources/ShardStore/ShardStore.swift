import Checksum
public import CoffreModel
public import Foundation
import RocksDB

/// The storage node's engine: shard bodies and their records.
///
/// Layout (Docs/architecture.md, "Shard store"):
/// - RocksDB column family `meta`: key -> `ShardRecord` (length, CRC-32C, creation time), so
///   listing, stat and scrub planning never read a body;
/// - bodies, by `ShardStoreEngine`: one file each (`files`, the default), or RocksDB blob
///   files in the column family `shards` (`rocksdbBlobs`).
/// A record is written only once its body is durable, so a record always has its body; a
/// body without a record (a crash between the two) is garbage that `collectGarbage` removes.
///
/// Integrity: the CRC-32C given by the writer is checked before `put` acknowledges, and
/// recomputed on every `get` and by `scrub`; a mismatch, a missing body or a RocksDB
/// corruption status is reported as `corrupt`, never returned as data.
///
/// Thread-safe; calls block on disk I/O. Two concurrent puts of the same key are not
/// supported (the coordinator never writes one shard key twice at once).
public final class ShardStore: Sendable {
    /// What is on disk when `put` returns.
    public enum Durability: String, Sendable, Codable {
        /// Body and record are fsync'd before `put` returns: the shard survives power loss.
        case synced
        /// Written but not fsync'd: the shard survives a crash of the process, not of the
        /// machine. For tests and benchmarks.
        case buffered
    }

    static let shardsFamily = "shards"
    static let metaFamily = "meta"
    static let settingsFile = "coffre-shard-store.json"

    public let path: String
    public let durability: Durability
    public let engine: ShardStoreEngine
    /// Random, drawn when the store's database is created and kept with its records: a node
    /// whose disk was replaced (or wiped) comes back with a new one, which tells the cluster
    /// that none of the shards placed on it before are there any more.
    public let incarnation: String
    private let database: RocksDatabase
    private let files: BodyFiles?
    /// Locks striped by key: a put and a conditional delete of one key do not interleave
    /// (the collector's delete must see the record it decided on, or nothing).
    private let keyLocks = (0..<Limits.shardKeyLockStripes).map { _ in NSLock() }

    private func withKeyLock<T, E: Error>(_ key: ShardKey, _ body: () throws(E) -> T) throws(E) -> T {
        var hasher = Hasher()
        hasher.combine(key.bytes)
        let lock = keyLocks[Int(UInt(bitPattern: hasher.finalize()) % UInt(keyLocks.count))]
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Opens (or creates) a store in the folder `path`.
    ///
    /// The engine is fixed when the store is created; opening it with another is refused.
    public init(path: String, durability: Durability = .synced, engine: ShardStoreEngine = .files) throws(ShardStoreError) {
        self.path = path
        self.durability = durability
        self.engine = engine
        try Self.checkSettings(path: path, engine: engine)
        var shards = RocksDatabase.ColumnFamilyOptions(name: Self.shardsFamily, minBlobSize: 4096)
        shards.writeBufferSize = 128 << 20
        let meta = RocksDatabase.ColumnFamilyOptions(name: Self.metaFamily)
        do {
            database = try RocksDatabase(path: path + "/rocksdb", columnFamilies: [shards, meta])
        } catch {
            throw ShardStoreError(error.code, "cannot open shard store at \(path): \(error.message)")
        }
        files = engine == .files ? try BodyFiles(root: path + "/bodies") : nil
        incarnation = try Self.incarnation(of: database, durability: durability)
    }

    static let incarnationKey = Array("incarnation".utf8)

    /// The database's incarnation, drawn (16 random bytes, hex) and stored on first open.
    private static func incarnation(of database: RocksDatabase, durability: Durability) throws(ShardStoreError) -> String {
        do {
            if let stored = try database.get(incarnationKey) {
                return stored.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
            }
            var generator = SystemRandomNumberGenerator()
            let fresh = Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
            try database.put(incarnationKey, Array(fresh.utf8), sync: durability == .synced)
            return fresh
        } catch {
            throw ShardStoreError(error.code, "cannot read or record the store's incarnation: \(error.message)")
        }
    }

    /// Records the engine on creation; refuses a store created with another.
    private static func checkSettings(path: String, engine: ShardStoreEngine) throws(ShardStoreError) {
        let file = URL(fileURLWithPath: path + "/" + settingsFile)
        if let data = try? Data(contentsOf: file) {
            guard let settings = try? JSONDecoder().decode([String: String].self, from: data) else {
                throw ShardStoreError(.corrupt, "unreadable \(file.path)")
            }
            guard settings["engine"] == engine.rawValue else {
                throw ShardStoreError(
                    .invalidArgument,
                    "shard store at \(path) uses engine \(settings["engine"] ?? "?"), not \(engine.rawValue)")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try JSONEncoder().encode(["engine": engine.rawValue, "version": "1"]).write(to: file, options: .atomic)
        } catch {
            throw ShardStoreError(.storageFailure, "cannot create shard store at \(path): \(error)")
        }
    }

    /// Stores a shard after checking its body against `checksum` (CRC-32C).
    ///
    /// Overwrites a shard with the same key. Nothing is written when the check fails.
    /// - Throws: `checksumMismatch`, `invalidArgument`, `limitExceeded`, `storageFailure`.
    public func put(_ key: ShardKey, body: UnsafeRawBufferPointer, checksum: UInt32, createdAt: Date = Date()) throws(ShardStoreError) {
        try withKeyLock(key) { () throws(ShardStoreError) in try putUnlocked(key, body: body, checksum: checksum, createdAt: createdAt) }
    }

    private func putUnlocked(_ key: ShardKey, body: UnsafeRawBufferPointer, checksum: UInt32, createdAt: Date) throws(ShardStoreError) {
        guard body.count <= Limits.shardBodySizeMax else {
            throw ShardStoreError(
                .limitExceeded,
                "shard \(key) of \(ByteCount(body.count)) exceeds \(ByteCount(Limits.shardBodySizeMax))")
        }
        let actual = CRC32C.checksum(body)
        guard actual == checksum else {
            throw ShardStoreError(
                .checksumMismatch,
                "shard \(key): body of \(body.count) B has CRC-32C \(hex(actual)), writer said \(hex(checksum))")
        }
        let inline = files == nil || body.count <= Limits.shardInlineSizeMax
        let previous = try? stat(key)
        let record = ShardRecord(length: UInt64(body.count), checksum: checksum, createdAt: createdAt, inline: inline)
        let batch = RocksBatch()
        if inline {
            batch.put(key.bytes, body, family: Self.shardsFamily, database: database)
        } else {
            try files!.write(key, body, sync: durability == .synced)
            if previous?.inline == true { batch.delete(key.bytes, family: Self.shardsFamily, database: database) }
        }
        batch.put(key.bytes, record.encoded(), family: Self.metaFamily, database: database)
        do {
            try database.write(batch, sync: durability == .synced)
        } catch {
            let full = error.message.contains("No space left on device")
            throw ShardStoreError(full ? .nodeFull : .storageFailure, "put \(key): \(error.message)")
        }
        // A body file this shard had before is garbage now (collectGarbage also finds it).
        if inline, let files, let previous, !previous.inline { try? files.remove(key) }
    }

    /// Stores a shard held in an array.
    public func put(_ key: ShardKey, body: [UInt8], checksum: UInt32, createdAt: Date = Date()) throws(ShardStoreError) {
        try withBytes(of: body) { bytes throws(ShardStoreError) in
            try put(key, body: bytes, checksum: checksum, createdAt: createdAt)
        }
    }

    /// Reads a shard and verifies it.
    /// - Throws: `notFound` when no such shard; `corrupt` when its body is damaged or missing.
    public func get(_ key: ShardKey) throws(ShardStoreError) -> Shard {
        let record = try stat(key)
        let bytes: ShardBytes?
        if let files, !record.inline {
            bytes = try files.read(key, expectedLength: Int(record.length))
        } else {
            do {
                bytes = try database.get(key.bytes, family: Self.shardsFamily).map(ShardBytes.init)
            } catch {
                throw ShardStoreError(error.code == .corrupt ? .corrupt : .storageFailure, "get \(key): \(error.message)")
            }
        }
        guard let bytes else {
            throw ShardStoreError(.corrupt, "shard \(key): record present, body missing")
        }
        try bytes.withUnsafeBytes { body throws(ShardStoreError) in try verify(key, body: body, record: record) }
        return Shard(key: key, record: record, bytes: bytes)
    }

    /// Reads a verified shard into the start of `buffer` (a node reuses its buffers this
    /// way); returns the record. `buffer` must hold at least the shard's length (see `stat`);
    /// when it is aligned and holds the length rounded up to `DirectIO.alignment`, the body
    /// is read with direct I/O.
    public func get(_ key: ShardKey, into buffer: UnsafeMutableRawBufferPointer) throws(ShardStoreError) -> ShardRecord {
        let record = try stat(key)
        guard buffer.count >= Int(record.length) else {
            throw ShardStoreError(.invalidArgument, "shard \(key) is \(record.length) B, buffer holds \(buffer.count) B")
        }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(record.length)])
        if let files, !record.inline {
            guard try files.read(key, into: buffer, length: Int(record.length)) else {
                throw ShardStoreError(.corrupt, "shard \(key): record present, body missing")
            }
            try verify(key, body: UnsafeRawBufferPointer(target), record: record)
        } else {
            // Read again with its own record: the shard may have been rewritten since `stat`.
            let shard = try get(key)
            guard shard.count <= buffer.count else {
                throw ShardStoreError(.invalidArgument, "shard \(key) is \(shard.count) B, buffer holds \(buffer.count) B")
            }
            shard.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[..<$0.count]).copyMemory(from: $0) }
            return shard.record
        }
        return record
    }

    /// The record of a shard, without reading its body.
    /// - Throws: `notFound` when no such shard.
    public func stat(_ key: ShardKey) throws(ShardStoreError) -> ShardRecord {
        let value: RocksValue?
        do {
            value = try database.get(key.bytes, family: Self.metaFamily)
        } catch {
            throw ShardStoreError(error.code, "stat \(key): \(error.message)")
        }
        guard let value else { throw ShardStoreError(.notFound, "no shard \(key)") }
        guard let record = ShardRecord(decoding: value.bytes) else {
            throw ShardStoreError(.corrupt, "shard \(key): unreadable record of \(value.count) B")
        }
        return record
    }

    /// Deletes a shard; deleting an absent shard is not an error.
    ///
    /// With `files`, the space comes back at once; with `rocksdbBlobs`, when compaction drops
    /// the body (see `compact()`).
    public func delete(_ key: ShardKey) throws(ShardStoreError) {
        try withKeyLock(key) { () throws(ShardStoreError) in try deleteUnlocked(key, previous: try? stat(key)) }
    }

    /// Deletes a shard only if its record was created at `createdAt` (to the millisecond):
    /// the collector's compare-and-delete, so that a shard written again after the collector
    /// decided (a repair that put it back here) is never removed.
    /// - Returns: the deleted record, or nil when the shard is absent or was created at
    ///   another time (nothing is deleted then).
    public func delete(_ key: ShardKey, ifCreatedAtMilliseconds createdAt: UInt64) throws(ShardStoreError) -> ShardRecord? {
        try withKeyLock(key) { () throws(ShardStoreError) -> ShardRecord? in
            guard let previous = try? stat(key), previous.createdAtMilliseconds == createdAt else { return nil }
            try deleteUnlocked(key, previous: previous)
            return previous
        }
    }

    private func deleteUnlocked(_ key: ShardKey, previous: ShardRecord?) throws(ShardStoreError) {
        let batch = RocksBatch()
        // Bodies in RocksDB: inline ones, and every one of the `rocksdbBlobs` engine (whose
        // records from before the inline flag say false).
        if files == nil || previous?.inline != false { batch.delete(key.bytes, family: Self.shardsFamily, database: database) }
        batch.delete(key.bytes, family: Self.metaFamily, database: database)
        do {
            try database.write(batch, sync: durability == .synced)
        } catch {
            throw ShardStoreError(.storageFailure, "delete \(key): \(error.message)")
        }
        // The record is gone first: a crash here leaves only garbage, never a dangling record.
        if let files, previous?.inline != true { try files.remove(key) }
    }

    /// Lists shards whose key starts with `prefix`, in key order, after `cursor`.
    ///
    /// - Parameters:
    ///   - cursor: the last key of the previous page, or nil to start.
    ///   - limit: at most this many entries (capped at `Limits.shardListPageMax`).
    public func list(prefix: [UInt8] = [], after cursor: ShardKey? = nil, limit: Int = Limits.shardListPageMax) throws(ShardStoreError) -> [ShardListing] {
        let limit = min(max(limit, 0), Limits.shardListPageMax)
        let iterator = database.makeIterator(family: Self.metaFamily)
        iterator.seek(cursor?.bytes ?? prefix)
        if let cursor, iterator.isValid, iterator.key == cursor.bytes { iterator.next() }
        var listings: [ShardListing] = []
        while iterator.isValid, listings.count < limit {
            let key = iterator.key
            guard key.starts(with: prefix) else { break }
            if let shardKey = try? ShardKey(key), let record = ShardRecord(decoding: iterator.value) {
                listings.append(ShardListing(key: shardKey, record: record))
            }
            iterator.next()
        }
        do { try iterator.checkError() } catch { throw ShardStoreError(error.code, "list: \(error.message)") }
        return listings
    }

    /// Verifies up to `limit` shards after `cursor`: one bounded step of a scrub.
    ///
    /// Call again with the report's `cursor` until it is nil. Each shard's body is read and
    /// its CRC-32C recomputed; damaged and missing bodies are listed, never repaired here
    /// (repair is the coordinator's job: it rebuilds the shard from the other shards).
    public func scrub(after cursor: ShardKey? = nil, limit: Int = 1000) throws(ShardStoreError) -> ScrubReport {
        var report = ScrubReport()
        let page = try list(after: cursor, limit: limit)
        for listing in page {
            report.scanned += 1
            do {
                let shard = try get(listing.key)
                report.bytesVerified += shard.count
            } catch where error.code == .corrupt {
                report.corrupt.append(ScrubReport.Finding(key: listing.key, reason: error.message))
            } catch where error.code == .notFound {
                continue  // deleted while we scanned
            }
        }
        report.cursor = page.count < min(max(limit, 0), Limits.shardListPageMax) ? nil : page.last?.key
        return report
    }

    /// Scrubs the whole store, one bounded step after another.
    public func scrubAll(step: Int = 1000) throws(ShardStoreError) -> ScrubReport {
        var total = ScrubReport()
        var cursor: ShardKey?
        repeat {
            let report = try scrub(after: cursor, limit: step)
            total.scanned += report.scanned
            total.bytesVerified += report.bytesVerified
            total.corrupt += report.corrupt
            cursor = report.cursor
        } while cursor != nil
        return total
    }

    /// Writes RocksDB's memtables out to SST (and blob) files.
    public func flush() throws(ShardStoreError) {
        do {
            try database.flush(family: Self.shardsFamily)
            try database.flush(family: Self.metaFamily)
        } catch {
            throw ShardStoreError(error.code, "flush: \(error.message)")
        }
    }

    /// Compacts both families, dropping deleted bodies and collecting blob garbage.
    public func compact() {
        database.compact(family: Self.shardsFamily)
        database.compact(family: Self.metaFamily)
    }

    /// Bytes on disk of shard bodies (body files, or live RocksDB blob files).
    public var bodyBytes: Int64 {
        if let files { return files.totalBytes() }
        return Int64(database.property("rocksdb.total-blob-file-size", family: Self.shardsFamily) ?? "0") ?? 0
    }

    /// Removes body files without a record (a crash between body and record, or between
    /// record deletion and unlink) and leftover temporary files, in one of the 256 body
    /// folders: one bounded step of garbage collection. Returns the files removed.
    ///
    /// Only for files that were not being written during the call: run it on a store at rest
    /// or with a folder no put is writing to (the node's GC worker pauses puts per folder).
    @discardableResult
    public func collectGarbage(folder index: UInt8) throws(ShardStoreError) -> Int {
        guard let files else { return 0 }
        let (bodies, temporaries) = files.listFolder(index)
        var removed = 0
        for name in temporaries {
            files.removeFile(folder: index, name: name)
            removed += 1
        }
        for name in bodies {
            guard let bytes = Hex.decode(name), let key = try? ShardKey(bytes) else {
                continue  // not ours: leave it for a person to look at
            }
            do {
                // A body file of a shard rewritten inline is garbage too.
                if try stat(key).inline {
                    files.removeFile(folder: index, name: name)
                    removed += 1
                }
            } catch where error.code == .notFound {
                files.removeFile(folder: index, name: name)
                removed += 1
            }
        }
        return removed
    }

    /// Runs `collectGarbage` over every folder.
    @discardableResult
    public func collectAllGarbage() throws(ShardStoreError) -> Int {
        var removed = 0
        for index in 0...255 { removed += try collectGarbage(folder: UInt8(index)) }
        return removed
    }

    // MARK: - Private

    private func verify(_ key: ShardKey, body: UnsafeRawBufferPointer, record: ShardRecord) throws(ShardStoreError) {
        guard body.count == Int(record.length) else {
            throw ShardStoreError(.corrupt, "shard \(key): body of \(body.count) B, record says \(record.length) B")
        }
        let actual = CRC32C.checksum(body)
        guard actual == record.checksum else {
            throw ShardStoreError(
                .corrupt, "shard \(key): CRC-32C \(hex(actual)) on read, \(hex(record.checksum)) when written")
        }
    }
}

func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
