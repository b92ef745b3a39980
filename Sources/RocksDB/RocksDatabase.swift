import CoffreModel
import CRocksDB

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A RocksDB database with named column families, through RocksDB's C API.
///
/// Every C call of RocksDB goes through this file and `RocksBatch`/`RocksIterator`: status
/// strings become `RocksDBError`, malloc'd results are released with `rocksdb_free`, and no
/// C type appears in a public signature.
///
/// Thread-safe (RocksDB's own guarantee): reads and writes may run from any number of threads.
/// Calls block on disk I/O; services run them off their event loops.
public final class RocksDatabase: @unchecked Sendable {
    /// Settings of one column family.
    public struct ColumnFamilyOptions: Sendable {
        public var name: String
        /// Values at least this large go to blob files (key-value separation); nil keeps
        /// every value in the LSM tree.
        public var minBlobSize: Int?
        /// Target size of one blob file.
        public var blobFileSize: Int = 256 << 20
        /// Memtable size; a flush writes it out.
        public var writeBufferSize: Int = 64 << 20

        public init(name: String, minBlobSize: Int? = nil) {
            self.name = name
            self.minBlobSize = minBlobSize
        }
    }

    /// Database-wide settings.
    public struct Options: Sendable {
        public var createIfMissing = true
        public var backgroundJobs = 2
        public init() {}
    }

    public let path: String
    private let db: OpaquePointer
    private let handles: [String: OpaquePointer]
    private let options: OpaquePointer
    private let cfOptions: [OpaquePointer]
    private let readOptions: OpaquePointer

    /// Opens (or creates) the database at `path` with these column families.
    ///
    /// "default" is always opened; list it to set its options.
    public init(path: String, columnFamilies: [ColumnFamilyOptions], options: Options = Options()) throws(RocksDBError) {
        self.path = path
        let dbOptions = rocksdb_options_create()!
        rocksdb_options_set_create_if_missing(dbOptions, options.createIfMissing ? 1 : 0)
        rocksdb_options_set_create_missing_column_families(dbOptions, 1)
        rocksdb_options_set_max_background_jobs(dbOptions, Int32(options.backgroundJobs))
        var families = columnFamilies
        if !families.contains(where: { $0.name == "default" }) {
            families.insert(ColumnFamilyOptions(name: "default"), at: 0)
        }
        let perFamily: [OpaquePointer] = families.map { family in
            let o = rocksdb_options_create_copy(dbOptions)!
            rocksdb_options_set_write_buffer_size(o, family.writeBufferSize)
            rocksdb_options_set_compression(o, Int32(rocksdb_no_compression))
            if let minBlobSize = family.minBlobSize {
                rocksdb_options_set_enable_blob_files(o, 1)
                rocksdb_options_set_min_blob_size(o, UInt64(minBlobSize))
                rocksdb_options_set_blob_file_size(o, UInt64(family.blobFileSize))
                rocksdb_options_set_blob_compression_type(o, Int32(rocksdb_no_compression))
                // Blob GC relocates live blobs out of the oldest blob files during compaction,
                // so the space of deleted shards comes back.
                rocksdb_options_set_enable_blob_gc(o, 1)
                rocksdb_options_set_blob_gc_age_cutoff(o, 0.25)
            }
            return o
        }
        let names = families.map { strdup($0.name) }
        defer { names.forEach { free($0) } }
        var constNames = names.map { UnsafePointer($0) }
        var optionPointers: [OpaquePointer?] = perFamily
        var handlePointers = [OpaquePointer?](repeating: nil, count: families.count)
        var error: UnsafeMutablePointer<CChar>?
        let opened = rocksdb_open_column_families(
            dbOptions, path, Int32(families.count), &constNames, &optionPointers, &handlePointers, &error)
        if let failure = RocksDBError.take(error, "open \(path)") {
            perFamily.forEach { rocksdb_options_destroy($0) }
            rocksdb_options_destroy(dbOptions)
            throw failure
        }
        self.db = opened!
        var byName: [String: OpaquePointer] = [:]
        for (family, handle) in zip(families, handlePointers) { byName[family.name] = handle! }
        self.handles = byName
        self.options = dbOptions
        self.cfOptions = perFamily
        let read = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_verify_checksums(read, 1)
        self.readOptions = read
    }

    deinit {
        for handle in handles.values { rocksdb_column_family_handle_destroy(handle) }
        rocksdb_close(db)
        rocksdb_readoptions_destroy(readOptions)
        cfOptions.forEach { rocksdb_options_destroy($0) }
        rocksdb_options_destroy(options)
    }

    func handle(_ family: String) -> OpaquePointer {
        guard let handle = handles[family] else {
            preconditionFailure("column family \(family) was not opened")
        }
        return handle
    }

    var raw: OpaquePointer { db }

    /// Applies a batch atomically.
    ///
    /// - Parameters:
    ///   - sync: fsync the write-ahead log before returning (durable across power loss).
    ///   - writeAheadLog: false skips the log (the data is in memory until the next flush).
    public func write(_ batch: RocksBatch, sync: Bool, writeAheadLog: Bool = true) throws(RocksDBError) {
        let writeOptions = rocksdb_writeoptions_create()!
        defer { rocksdb_writeoptions_destroy(writeOptions) }
        rocksdb_writeoptions_set_sync(writeOptions, sync ? 1 : 0)
        rocksdb_writeoptions_disable_WAL(writeOptions, writeAheadLog ? 0 : 1)
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_write(db, writeOptions, batch.raw, &error)
        if let failure = RocksDBError.take(error, "write batch of \(batch.count)") { throw failure }
    }

    /// Reads one value; nil when the key is absent.
    ///
    /// The value's memory is RocksDB's own allocation, handed over without a copy.
    public func get(_ key: [UInt8], family: String = "default") throws(RocksDBError) -> RocksValue? {
        var length = 0
        var error: UnsafeMutablePointer<CChar>?
        let value = key.withUnsafeBufferPointer { k in
            k.baseAddress!.withMemoryRebound(to: CChar.self, capacity: k.count) {
                rocksdb_get_cf(db, readOptions, handle(family), $0, k.count, &length, &error)
            }
        }
        if let failure = RocksDBError.take(error, "get") { throw failure }
        guard let value else { return nil }
        return RocksValue(pointer: UnsafeMutableRawPointer(value), count: length)
    }

    /// Writes one key without a batch.
    public func put(_ key: [UInt8], _ value: [UInt8], family: String = "default", sync: Bool) throws(RocksDBError) {
        let batch = RocksBatch()
        batch.put(key, value, family: family, database: self)
        try write(batch, sync: sync)
    }

    /// An iterator over one column family, in key order.
    public func makeIterator(family: String = "default") -> RocksIterator {
        RocksIterator(iterator: rocksdb_create_iterator_cf(db, readOptions, handle(family)), owner: self)
    }

    /// Writes the memtable of `family` to disk (SST and blob files) and waits for it.
    public func flush(family: String = "default") throws(RocksDBError) {
        let flushOptions = rocksdb_flushoptions_create()!
        defer { rocksdb_flushoptions_destroy(flushOptions) }
        rocksdb_flushoptions_set_wait(flushOptions, 1)
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_flush_cf(db, flushOptions, handle(family), &error)
        if let failure = RocksDBError.take(error, "flush \(family)") { throw failure }
    }

    /// Compacts the whole key range of `family` (reclaims deleted space, runs blob GC).
    public func compact(family: String = "default") {
        rocksdb_compact_range_cf(db, handle(family), nil, 0, nil, 0)
    }

    /// A RocksDB property ("rocksdb.live-blob-file-size", ...), nil if unknown.
    public func property(_ name: String, family: String = "default") -> String? {
        guard let value = rocksdb_property_value_cf(db, handle(family), name) else { return nil }
        defer { rocksdb_free(value) }
        return String(cString: value)
    }
}

/// A value read from RocksDB, owning RocksDB's malloc'd buffer (freed on deinit).
public final class RocksValue: @unchecked Sendable {
    private let pointer: UnsafeMutableRawPointer
    public let count: Int

    init(pointer: UnsafeMutableRawPointer, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    deinit { rocksdb_free(pointer) }

    /// Calls `body` with the value's bytes; they must not escape it.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// A copy of the bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
}
