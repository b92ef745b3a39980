import Checksum
public import CoffreModel
public import Foundation
import RocksDB

/// The storage node's engine: shard bodies and their checksums in RocksDB.
///
/// Layout (Docs/architecture.md, "Shard store"):
/// - column family `shards`: key -> body, with blob files on, so the multi-megabyte bodies
///   live in append-only blob files and the LSM tree holds only small references;
/// - column family `meta`: key -> `ShardRecord` (length, CRC-32C, creation time), so
///   listing, stat and scrub planning never read a body.
/// Both are written in one atomic batch: a record exists exactly when its body does.
///
/// Integrity: the CRC-32C given by the writer is checked before `put` acknowledges, and
/// recomputed on every `get` and by `scrub`; a mismatch, a missing body or a RocksDB
/// corruption status is reported as `corrupt`, never returned as data.
///
/// Thread-safe; calls block on disk I/O.
public final class ShardStore: Sendable {
    /// What is on disk when `put` returns.
    public enum Durability: String, Sendable, Codable {
        /// The write-ahead log is fsync'd before `put` returns: the shard survives power loss.
        case synced
        /// The log is written but not fsync'd: the shard survives a crash of the process,
        /// not of the machine. For tests and benchmarks.
        case buffered
    }

    static let shardsFamily = "shards"
    static let metaFamily = "meta"

    public let path: String
    public let durability: Durability
    private let database: RocksDatabase

    /// Opens (or creates) a store in the folder `path`.
    public init(path: String, durability: Durability = .synced) throws(ShardStoreError) {
        self.path = path
        self.durability = durability
        var shards = RocksDatabase.ColumnFamilyOptions(name: Self.shardsFamily, minBlobSize: 4096)
        shards.writeBufferSize = 128 << 20
        let meta = RocksDatabase.ColumnFamilyOptions(name: Self.metaFamily)
        do {
            database = try RocksDatabase(path: path, columnFamilies: [shards, meta])
        } catch {
            throw ShardStoreError(error.code, "cannot open shard store at \(path): \(error.message)")
        }
    }

    /// Stores a shard after checking its body against `checksum` (CRC-32C).
    ///
    /// Overwrites a shard with the same key. Nothing is written when the check fails.
    /// - Throws: `checksumMismatch`, `invalidArgument`, `limitExceeded`, `storageFailure`.
    public func put(_ key: ShardKey, body: UnsafeRawBufferPointer, checksum: UInt32, createdAt: Date = Date()) throws(ShardStoreError) {
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
        let record = ShardRecord(length: UInt64(body.count), checksum: checksum, createdAt: createdAt)
        let batch = RocksBatch()
        batch.put(key.bytes, body, family: Self.shardsFamily, database: database)
        batch.put(key.bytes, record.encoded(), family: Self.metaFamily, database: database)
        do {
            try database.write(batch, sync: durability == .synced)
        } catch {
            throw ShardStoreError(.storageFailure, "put \(key): \(error.message)")
        }
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
        let value: RocksValue?
        do {
            value = try database.get(key.bytes, family: Self.shardsFamily)
        } catch {
            throw ShardStoreError(error.code == .corrupt ? .corrupt : .storageFailure, "get \(key): \(error.message)")
        }
        guard let value else {
            throw ShardStoreError(.corrupt, "shard \(key): record present, body missing")
        }
        try verify(key, value: value, record: record)
        return Shard(key: key, record: record, value: value)
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
    /// Space comes back when compaction drops the body (see `compact()`).
    public func delete(_ key: ShardKey) throws(ShardStoreError) {
        let batch = RocksBatch()
        batch.delete(key.bytes, family: Self.shardsFamily, database: database)
        batch.delete(key.bytes, family: Self.metaFamily, database: database)
        do {
            try database.write(batch, sync: durability == .synced)
        } catch {
            throw ShardStoreError(.storageFailure, "delete \(key): \(error.message)")
        }
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

    /// Writes memtables out to SST and blob files.
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

    /// Bytes of live blob files (where shard bodies live), from RocksDB's own accounting.
    public var blobBytes: Int64 {
        Int64(database.property("rocksdb.total-blob-file-size", family: Self.shardsFamily) ?? "0") ?? 0
    }

    // MARK: - Private

    private func verify(_ key: ShardKey, value: RocksValue, record: ShardRecord) throws(ShardStoreError) {
        guard value.count == Int(record.length) else {
            throw ShardStoreError(.corrupt, "shard \(key): body of \(value.count) B, record says \(record.length) B")
        }
        let actual = value.withUnsafeBytes { CRC32C.checksum($0) }
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
