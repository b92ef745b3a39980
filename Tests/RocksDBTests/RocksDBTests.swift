import RocksDB
import Testing
import TestSupport

@Suite struct RocksDatabaseTests {
    @Test func putGetDeleteAcrossReopen() async throws {
        try await withTemporaryDirectory { path in
            do {
                let db = try RocksDatabase(path: path, columnFamilies: [.init(name: "a"), .init(name: "b", minBlobSize: 16)])
                try db.put([1], [10, 11], family: "a", sync: true)
                try db.put([1], [UInt8](repeating: 5, count: 100), family: "b", sync: true)
                #expect(try db.get([1], family: "a")?.bytes == [10, 11])
                #expect(try db.get([2], family: "a") == nil)
                try db.flush(family: "b")
            }
            let db = try RocksDatabase(path: path, columnFamilies: [.init(name: "a"), .init(name: "b", minBlobSize: 16)])
            #expect(try db.get([1], family: "a")?.bytes == [10, 11])
            #expect(try db.get([1], family: "b")?.bytes == [UInt8](repeating: 5, count: 100))
            let batch = RocksBatch()
            batch.delete([1], family: "a", database: db)
            try db.write(batch, sync: true)
            #expect(try db.get([1], family: "a") == nil)
        }
    }

    @Test func iteratesInKeyOrder() async throws {
        try await withTemporaryDirectory { path in
            let db = try RocksDatabase(path: path, columnFamilies: [])
            for key: UInt8 in [5, 1, 3] { try db.put([key], [key], sync: false) }
            let iterator = db.makeIterator()
            iterator.seekToFirst()
            var keys: [[UInt8]] = []
            while iterator.isValid {
                keys.append(iterator.key)
                #expect(iterator.value == iterator.key)
                iterator.next()
            }
            try iterator.checkError()
            #expect(keys == [[1], [3], [5]])
            iterator.seek([2])
            #expect(iterator.key == [3])
        }
    }

    @Test func refusesAMissingFolderWithoutCreate() async throws {
        await withTemporaryDirectory { path in
            var options = RocksDatabase.Options()
            options.createIfMissing = false
            #expect(throws: RocksDBError.self) {
                try RocksDatabase(path: path + "/absent", columnFamilies: [], options: options)
            }
        }
    }
}
