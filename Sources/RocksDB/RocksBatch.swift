import CRocksDB

/// An atomic group of writes over any column families of one database.
public final class RocksBatch: @unchecked Sendable {
    let raw: OpaquePointer

    public init() { raw = rocksdb_writebatch_create()! }

    deinit { rocksdb_writebatch_destroy(raw) }

    /// Number of operations in the batch.
    public var count: Int { Int(rocksdb_writebatch_count(raw)) }

    /// Adds a put of `value` (raw memory, copied into the batch) at `key`.
    public func put(_ key: [UInt8], _ value: UnsafeRawBufferPointer, family: String, database: RocksDatabase) {
        key.withUnsafeBytes { k in
            rocksdb_writebatch_put_cf(
                raw, database.handle(family),
                k.baseAddress!.assumingMemoryBound(to: CChar.self), k.count,
                value.baseAddress?.assumingMemoryBound(to: CChar.self) ?? emptyBytes, value.count)
        }
    }

    /// Adds a put of `value` at `key`.
    public func put(_ key: [UInt8], _ value: [UInt8], family: String, database: RocksDatabase) {
        value.withUnsafeBytes { put(key, $0, family: family, database: database) }
    }

    /// Adds a delete of `key`.
    public func delete(_ key: [UInt8], family: String, database: RocksDatabase) {
        key.withUnsafeBytes { k in
            rocksdb_writebatch_delete_cf(
                raw, database.handle(family), k.baseAddress!.assumingMemoryBound(to: CChar.self), k.count)
        }
    }
}

/// A valid pointer for zero-length keys and values (the C API wants non-null pointers).
nonisolated(unsafe) let emptyBytes: UnsafePointer<CChar> = {
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    pointer.pointee = 0
    return UnsafePointer(pointer)
}()
