import Checksum
import CoffreModel
import Foundation
import ShardStore
import Testing
import TestSupport

func shardBody(_ seed: UInt64, _ count: Int) -> [UInt8] {
    var random = SeededGenerator(seed: seed)
    return random.bytes(count)
}

func put(_ store: ShardStore, _ key: String, _ body: [UInt8]) throws {
    try store.put(ShardKey(key), body: body, checksum: CRC32C.checksum(body))
}

/// Every file under `path` whose name passes `filter`, with its size.
func files(under path: String, _ filter: (String) -> Bool) -> [(path: String, size: Int)] {
    let enumerator = FileManager.default.enumerator(atPath: path)!
    var found: [(String, Int)] = []
    while let name = enumerator.nextObject() as? String {
        let full = path + "/" + name
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: full, isDirectory: &isFolder), !isFolder.boolValue, filter(name) {
            found.append((full, (try? fileSize(full)) ?? 0))
        }
    }
    return found
}

/// The file that holds shard bodies of an engine: blob files, or body files.
func bodyFiles(_ path: String, _ engine: ShardStoreEngine) -> [(path: String, size: Int)] {
    switch engine {
    case .rocksdbBlobs: files(under: path) { $0.hasSuffix(".blob") }
    case .files: files(under: path + "/bodies") { !$0.hasSuffix(".tmp") }
    }
}

@Suite struct ShardStoreTests {
    static let engines = ShardStoreEngine.allCases

    @Test(arguments: engines)
    func roundTripsAndSurvivesReopen(engine: ShardStoreEngine) async throws {
        try await withTemporaryDirectory { path in
            let bodies = (0..<5).map { shardBody(UInt64($0), [0, 1, 100_000, 1 << 20, 3_000_001][$0]) }
            do {
                let store = try ShardStore(path: path, engine: engine)
                for (i, body) in bodies.enumerated() { try put(store, "seg-1/\(i)", body) }
                for (i, body) in bodies.enumerated() {
                    let shard = try store.get(ShardKey("seg-1/\(i)"))
                    #expect(shard.bytes == body)
                    #expect(shard.record.checksum == CRC32C.checksum(body))
                }
            }
            // Reopen without a flush: the write-ahead log brings everything back.
            let store = try ShardStore(path: path, engine: engine)
            for (i, body) in bodies.enumerated() {
                #expect(try store.get(ShardKey("seg-1/\(i)")).bytes == body)
                #expect(try store.stat(ShardKey("seg-1/\(i)")).length == UInt64(body.count))
            }
        }
    }

    /// Found by the shard-record fuzzer: a creation time went through floating point and came
    /// back a millisecond off (1790000000.123 s listed as ...122 ms), so the collector's
    /// compare-and-delete by that time could never match. Times are whole milliseconds now.
    @Test(arguments: engines)
    func aShardIsDeletedByTheExactMillisecondItReports(engine: ShardStoreEngine) async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, engine: engine)
            let body = shardBody(3, 100)
            let created = Date(timeIntervalSince1970: 1_790_000_000.123)
            try store.put(ShardKey("t"), body: body, checksum: CRC32C.checksum(body), createdAt: created)
            let listed = try #require(try store.list().first).record
            #expect(listed.createdAtMilliseconds == 1_790_000_000_123)
            #expect(try store.delete(ShardKey("t"), ifCreatedAtMilliseconds: listed.createdAtMilliseconds - 1) == nil)
            #expect(try store.delete(ShardKey("t"), ifCreatedAtMilliseconds: listed.createdAtMilliseconds) == listed)
        }
    }

    @Test func aRecordDecodesOnlyFromItsEncodingAndBackToIt() {
        let record = ShardRecord(length: 1 << 20, checksum: 0xDEAD_BEEF, createdAtMilliseconds: UInt64.max, inline: true)
        #expect(ShardRecord(decoding: record.encoded()) == record)
        var reserved = record.encoded()
        reserved[2] = 1
        #expect(ShardRecord(decoding: reserved) == nil)
        #expect(ShardRecord(decoding: Array(record.encoded().dropLast())) == nil)
        #expect(ShardRecord.milliseconds(Date(timeIntervalSince1970: -5)) == 0)
        #expect(ShardRecord.milliseconds(.distantFuture) == 64_092_211_200_000)
    }

    @Test(arguments: engines)
    func refusesABodyThatDoesNotMatchItsChecksum(engine: ShardStoreEngine) async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, engine: engine)
            let body = shardBody(9, 5000)
            #expect {
                try store.put(ShardKey("x"), body: body, checksum: CRC32C.checksum(body) ^ 1)
            } throws: { ($0 as? ShardStoreError)?.code == .checksumMismatch }
            #expect { try store.stat(ShardKey("x")) } throws: { ($0 as? ShardStoreError)?.code == .notFound }
        }
    }

    @Test func anIncarnationIsKeptAcrossReopeningAndNewForAWipedStore() async throws {
        try await withTemporaryDirectory { path in
            let first = try ShardStore(path: path + "/node").incarnation
            #expect(first.count == 32 && Hex.decode(first) != nil)
            #expect(try ShardStore(path: path + "/node").incarnation == first)
            try FileManager.default.removeItem(atPath: path + "/node")
            #expect(try ShardStore(path: path + "/node").incarnation != first)
        }
    }

    @Test func refusesBadKeys() {
        #expect(throws: ShardStoreError.self) { try ShardKey([]) }
        #expect(throws: ShardStoreError.self) { try ShardKey([UInt8](repeating: 1, count: Limits.shardKeySizeMax + 1)) }
    }

    @Test(arguments: engines)
    func aFlippedByteOnDiskIsCaughtByGetAndScrub(engine: ShardStoreEngine) async throws {
        try await withTemporaryDirectory { path in
            let body = shardBody(3, 2 << 20)
            do {
                let store = try ShardStore(path: path, engine: engine)
                try put(store, "victim", body)
                try put(store, "bystander", shardBody(4, 10_000))
                try store.flush()
            }
            // Flip one byte in the middle of the largest body file (inside the 2 MiB body).
            let victim = try #require(bodyFiles(path, engine).max { $0.size < $1.size })
            #expect(victim.size >= 2 << 20)
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: victim.path))
            let offset = UInt64(victim.size / 2)
            try handle.seek(toOffset: offset)
            let original = try handle.read(upToCount: 1)!
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: Data([original[0] ^ 0x20]))
            try handle.close()

            let store = try ShardStore(path: path, engine: engine)
            #expect { try store.get(ShardKey("victim")) } throws: { ($0 as? ShardStoreError)?.code == .corrupt }
            let report = try store.scrubAll()
            #expect(report.scanned == 2)
            #expect(report.corrupt.map(\.key) == [try ShardKey("victim")])
            #expect(try store.get(ShardKey("bystander")).count == 10_000)
        }
    }

    @Test(arguments: engines)
    func deletingReclaimsSpaceAfterCompaction(engine: ShardStoreEngine) async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, engine: engine)
            for i in 0..<8 { try put(store, "s/\(i)", shardBody(UInt64(i), 2 << 20)) }
            try store.flush()
            let before = store.bodyBytes
            #expect(before >= 16 << 20)
            for i in 0..<8 { try store.delete(ShardKey("s/\(i)")) }
            try store.flush()
            store.compact()
            #expect(store.bodyBytes < before / 4, "body bytes \(before) -> \(store.bodyBytes)")
            #expect(try store.list().isEmpty)
        }
    }

    @Test(arguments: engines)
    func listsByPrefixInPages(engine: ShardStoreEngine) async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, engine: engine)
            for i in 0..<25 { try put(store, "a/\(String(format: "%02d", i))", [UInt8(i)]) }
            try put(store, "b/0", [1])
            var seen: [String] = []
            var cursor: ShardKey?
            repeat {
                let page = try store.list(prefix: Array("a/".utf8), after: cursor, limit: 10)
                seen += page.map(\.key.description)
                cursor = page.count == 10 ? page.last?.key : nil
            } while cursor != nil
            #expect(seen == (0..<25).map { "a/\(String(format: "%02d", $0))" })
        }
    }

    @Test(arguments: engines)
    func concurrentPutsAndGets(engine: ShardStoreEngine) async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, durability: .buffered, engine: engine)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<16 {
                    group.addTask {
                        for i in 0..<20 {
                            let body = shardBody(UInt64(task * 1000 + i), 1000 + task * 100 + i)
                            try put(store, "t\(task)/\(i)", body)
                            #expect(try store.get(ShardKey("t\(task)/\(i)")).bytes == body)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try store.list().count == 320)
            #expect(try store.scrubAll(step: 7).corrupt.isEmpty)
        }
    }
}

@Suite struct ShardStoreFilesEngineTests {
    @Test func aMissingBodyFileIsReportedCorrupt() async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, engine: .files)
            // Over Limits.shardInlineSizeMax: these bodies get files of their own.
            try put(store, "gone", shardBody(1, 100_000))
            try put(store, "kept", shardBody(2, 100_000))
            let victim = try #require(bodyFiles(path, .files).first { $0.path.hasSuffix(Hex.encode(Array("gone".utf8))) })
            try FileManager.default.removeItem(atPath: victim.path)
            #expect { try store.get(ShardKey("gone")) } throws: { ($0 as? ShardStoreError)?.code == .corrupt }
            let report = try store.scrubAll()
            #expect(report.corrupt.map(\.key.description) == ["gone"])
            #expect(report.corrupt.first?.reason.contains("body missing") == true)
        }
    }

    @Test func garbageCollectionRemovesOrphansAndTemporaries() async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, engine: .files)
            try put(store, "live", shardBody(1, 100_000))
            try put(store, "orphan", shardBody(2, 100_000))
            // A crash between body and record leaves a body without a record; a crash mid-write
            // leaves a temporary file.
            let orphan = try #require(bodyFiles(path, .files).first { $0.path.hasSuffix(Hex.encode(Array("orphan".utf8))) })
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: orphan.path + "2.tmp"))
            let saved = try Data(contentsOf: URL(fileURLWithPath: orphan.path))
            try store.delete(ShardKey("orphan"))
            try saved.write(to: URL(fileURLWithPath: orphan.path))
            #expect(try store.collectAllGarbage() == 2)
            #expect(bodyFiles(path, .files).count == 1)
            #expect(try store.get(ShardKey("live")).count == 100_000)
        }
    }

    @Test func smallShardsLiveInRocksDBAndMoveBetweenPlacesOnOverwrite() async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, engine: .files)
            let key = try ShardKey("moving")
            let small = shardBody(1, Limits.shardInlineSizeMax)
            let large = shardBody(2, Limits.shardInlineSizeMax + 1)
            try put(store, "moving", small)
            #expect(try store.stat(key).inline)
            #expect(bodyFiles(path, .files).isEmpty, "a small shard has no body file")
            #expect(try store.get(key).bytes == small)

            try put(store, "moving", large)
            #expect(try !store.stat(key).inline)
            #expect(bodyFiles(path, .files).count == 1)
            #expect(try store.get(key).bytes == large)

            try put(store, "moving", small)
            #expect(bodyFiles(path, .files).isEmpty, "the body file of the large version is removed")
            var buffer = [UInt8](repeating: 0, count: small.count)
            _ = try buffer.withUnsafeMutableBytes { try store.get(key, into: $0) }
            #expect(buffer == small)
            #expect(try store.scrubAll().corrupt.isEmpty)

            // A crash after the inline record but before the old file's unlink leaves that
            // file behind: garbage collection finds it.
            try put(store, "moving", large)
            let file = try #require(bodyFiles(path, .files).first)
            let saved = try Data(contentsOf: URL(fileURLWithPath: file.path))
            try put(store, "moving", small)
            try saved.write(to: URL(fileURLWithPath: file.path))
            #expect(try store.collectAllGarbage() == 1)
            #expect(try store.get(key).bytes == small)

            try store.delete(key)
            #expect { try store.get(key) } throws: { ($0 as? ShardStoreError)?.code == .notFound }
            #expect(bodyFiles(path, .files).isEmpty)
        }
    }

    @Test func refusesToOpenWithAnotherEngine() async throws {
        try await withTemporaryDirectory { path in
            _ = try ShardStore(path: path, engine: .files)
            #expect { try ShardStore(path: path, engine: .rocksdbBlobs) } throws: { ($0 as? ShardStoreError)?.code == .invalidArgument }
        }
    }

    @Test func readsIntoACallersBuffer() async throws {
        try await withTemporaryDirectory { path in
            for engine in ShardStoreEngine.allCases {
                let store = try ShardStore(path: path + "/" + engine.rawValue, engine: engine)
                let body = shardBody(5, 70_000)
                try put(store, "k", body)
                var buffer = [UInt8](repeating: 0, count: 100_000)
                let record = try buffer.withUnsafeMutableBytes { try store.get(ShardKey("k"), into: $0) }
                #expect(record.length == 70_000)
                #expect(Array(buffer[..<70_000]) == body)
                var small = [UInt8](repeating: 0, count: 10)
                #expect(throws: ShardStoreError.self) { try small.withUnsafeMutableBytes { try store.get(ShardKey("k"), into: $0) } }
            }
        }
    }
}

func fileSize(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
}
