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

/// Blob files of a store (where shard bodies live once flushed).
func blobFiles(_ path: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".blob") }.sorted()
}

@Suite struct ShardStoreTests {
    @Test func roundTripsAndSurvivesReopen() async throws {
        try await withTemporaryDirectory { path in
            let bodies = (0..<5).map { shardBody(UInt64($0), [0, 1, 100_000, 1 << 20, 3_000_001][$0]) }
            do {
                let store = try ShardStore(path: path)
                for (i, body) in bodies.enumerated() { try put(store, "seg-1/\(i)", body) }
                for (i, body) in bodies.enumerated() {
                    let shard = try store.get(ShardKey("seg-1/\(i)"))
                    #expect(shard.bytes == body)
                    #expect(shard.record.checksum == CRC32C.checksum(body))
                }
            }
            // Reopen without a flush: the write-ahead log brings everything back.
            let store = try ShardStore(path: path)
            for (i, body) in bodies.enumerated() {
                #expect(try store.get(ShardKey("seg-1/\(i)")).bytes == body)
                #expect(try store.stat(ShardKey("seg-1/\(i)")).length == UInt64(body.count))
            }
        }
    }

    @Test func refusesABodyThatDoesNotMatchItsChecksum() async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path)
            let body = shardBody(9, 5000)
            #expect {
                try store.put(ShardKey("x"), body: body, checksum: CRC32C.checksum(body) ^ 1)
            } throws: { ($0 as? ShardStoreError)?.code == .checksumMismatch }
            #expect { try store.stat(ShardKey("x")) } throws: { ($0 as? ShardStoreError)?.code == .notFound }
        }
    }

    @Test func refusesBadKeys() {
        #expect(throws: ShardStoreError.self) { try ShardKey([]) }
        #expect(throws: ShardStoreError.self) { try ShardKey([UInt8](repeating: 1, count: Limits.shardKeySizeMax + 1)) }
    }

    @Test func aFlippedByteInABlobFileIsCaughtByGetAndScrub() async throws {
        try await withTemporaryDirectory { path in
            let body = shardBody(3, 2 << 20)
            do {
                let store = try ShardStore(path: path)
                try put(store, "victim", body)
                try put(store, "bystander", shardBody(4, 10_000))
                try store.flush()
            }
            let files = try blobFiles(path)
            #expect(!files.isEmpty)
            // Flip one byte in the middle of the largest blob file (inside the 2 MiB body).
            let victim = try files.max { try fileSize("\(path)/\($0)") < fileSize("\(path)/\($1)") }!
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: "\(path)/\(victim)"))
            let offset = UInt64(try fileSize("\(path)/\(victim)") / 2)
            try handle.seek(toOffset: offset)
            let original = try handle.read(upToCount: 1)!
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: Data([original[0] ^ 0x20]))
            try handle.close()

            let store = try ShardStore(path: path)
            #expect { try store.get(ShardKey("victim")) } throws: { ($0 as? ShardStoreError)?.code == .corrupt }
            let report = try store.scrubAll()
            #expect(report.scanned == 2)
            #expect(report.corrupt.map(\.key) == [try ShardKey("victim")])
            #expect(try store.get(ShardKey("bystander")).count == 10_000)
        }
    }

    @Test func deletingReclaimsSpaceAfterCompaction() async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path)
            for i in 0..<8 { try put(store, "s/\(i)", shardBody(UInt64(i), 2 << 20)) }
            try store.flush()
            let before = store.blobBytes
            #expect(before >= 16 << 20)
            for i in 0..<8 { try store.delete(ShardKey("s/\(i)")) }
            try store.flush()
            store.compact()
            #expect(store.blobBytes < before / 4, "blob bytes \(before) -> \(store.blobBytes)")
            #expect(try store.list().isEmpty)
        }
    }

    @Test func listsByPrefixInPages() async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path)
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

    @Test func concurrentPutsAndGets() async throws {
        try await withTemporaryDirectory { path in
            let store = try ShardStore(path: path, durability: .buffered)
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

func fileSize(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
}
