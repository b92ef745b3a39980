import CRocksDB

/// A forward iterator over one column family (a consistent snapshot from its creation).
public final class RocksIterator: @unchecked Sendable {
    private let iterator: OpaquePointer
    // Keeps the database open while the iterator lives.
    private let owner: RocksDatabase

    init(iterator: OpaquePointer, owner: RocksDatabase) {
        self.iterator = iterator
        self.owner = owner
    }

    deinit { rocksdb_iter_destroy(iterator) }

    /// Positions at the first key >= `key`.
    public func seek(_ key: [UInt8]) {
        key.withUnsafeBytes { k in
            rocksdb_iter_seek(iterator, k.baseAddress?.assumingMemoryBound(to: CChar.self) ?? emptyBytes, k.count)
        }
    }

    public func seekToFirst() { rocksdb_iter_seek_to_first(iterator) }

    public var isValid: Bool { rocksdb_iter_valid(iterator) != 0 }

    public func next() { rocksdb_iter_next(iterator) }

    /// The current key (a copy). Only while `isValid`.
    public var key: [UInt8] {
        var length = 0
        let pointer = rocksdb_iter_key(iterator, &length)!
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// The current value (a copy). Only while `isValid`.
    public var value: [UInt8] {
        var length = 0
        let pointer = rocksdb_iter_value(iterator, &length)!
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// Throws the error that ended the iteration early, if any.
    public func checkError() throws(RocksDBError) {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(iterator, &error)
        if let failure = RocksDBError.take(error, "iterate") { throw failure }
    }
}
