import CoffreModel
import Coordinator
import Foundation
import Logging
import Metadata
import Synchronization
import Testing
import TestSupport

/// Transfer quotas' arithmetic (`TransferWindow`) by property, and the meter's counting and
/// flushing against a real embedded RocksDB store, with time as an argument.
@Suite struct TransferMeterTests {
    /// 30 s windows: buckets of one second.
    let window = TransferWindow(seconds: 30)

    @Test func bytesCountForThirtyBucketsThenStop() {
        let served = 10_000 * 1000 + 500  // in bucket 10_000
        let usage: [Int64: Int64] = [window.bucket(at: Int64(served)): 7]
        #expect(window.used(usage, at: Int64(served)) == 7)
        #expect(window.used(usage, at: 10_029 * 1000 + 999) == 7, "still the 30th bucket")
        #expect(window.used(usage, at: 10_030 * 1000) == 0, "out of the window")
        #expect(window.resetsAt(usage, at: Int64(served)) == Optional(Int64(10_030_000)))
        #expect(window.resetsAt(usage, at: 10_030 * 1000) == nil)
        // Numbered under a shorter window (the window was raised since): not counted.
        #expect(window.used([window.bucket(at: Int64(served)) + 1: 5], at: Int64(served)) == 0)
    }

    /// For random uses, limits and requests: `wait` is 0 exactly when the bytes fit now; when
    /// it says to wait, they fit at that time and not one millisecond before; nil only when
    /// the request is larger than the whole quota.
    @Test func waitIsTheFirstTimeTheBytesFit() {
        let seed = SeededGenerator.seedFromEnvironment()
        print("TransferMeterTests seed \(seed)")
        var random = SeededGenerator(seed: seed)
        for _ in 0..<2000 {
            let now = Int64.random(in: 1_000_000...2_000_000, using: &random) * 1000 + Int64.random(in: 0..<1000, using: &random)
            var usage: [Int64: Int64] = [:]
            for _ in 0..<Int.random(in: 0...12, using: &random) {
                usage[window.bucket(at: now) - Int64.random(in: 0...40, using: &random), default: 0] += Int64.random(in: 1...100, using: &random)
            }
            let limit = Int64.random(in: 0...600, using: &random)
            let wanted = Int64.random(in: 0...200, using: &random)
            let fits = { (time: Int64) in window.used(usage, at: time) + wanted <= limit }
            if wanted == 0 {
                #expect(window.wait(usage, at: now, limit: limit, wanted: 0) == 0, "nothing to send always fits")
                continue
            }
            guard let wait = window.wait(usage, at: now, limit: limit, wanted: wanted) else {
                #expect(wanted > limit, "seed \(seed)")
                continue
            }
            if wait == 0 {
                #expect(fits(now), "seed \(seed)")
            } else {
                #expect(!fits(now) && fits(now + wait) && !fits(now + wait - 1), "seed \(seed): wait \(wait)")
            }
        }
    }

    /// Concurrent downloads cannot all pass one check: each admitted one holds its bytes until
    /// sent or ended; sent bytes count, the unsent rest of an ended one is given back.
    @Test func admittedDownloadsHoldTheirBytesUntilSentOrEnded() async throws {
        try await withTemporaryDirectory { folder in
            let metadata = try EmbeddedMetadataStore(path: folder + "/metadata")
            let clock = WorkClock(wallMillis: { 70_000_000 }, monotonic: { .zero }, sleep: { _ in })
            let meter = TransferMeter(coordinator: "c-fr", metadata: metadata, window: window, flushInterval: .seconds(2), clock: clock, logger: Logger(label: "test"))
            guard case .admitted(let first) = try await meter.admit("A", wanted: 60, limit: 100) else { Issue.record("the first was refused"); return }
            guard case .refused(let wait) = try await meter.admit("A", wanted: 60, limit: 100) else { Issue.record("both passed"); return }
            #expect(wait == nil || wait! > 0)
            first.sent(30)
            first.end()
            guard case .admitted(let second) = try await meter.admit("A", wanted: 70, limit: 100) else { Issue.record("the unsent 30 were not given back"); return }
            second.end()
            guard case .refused = try await meter.admit("A", wanted: 71, limit: 100) else { Issue.record("the 30 sent were not counted"); return }
            guard case .admitted = try await meter.admit("B", wanted: 100, limit: 100) else { Issue.record("another account was held back"); return }
        }
    }

    /// Served bytes count at once on the coordinator that served them, reach the store at a
    /// flush (added to, never overwritten: a restarted coordinator keeps counting), and
    /// another coordinator sees them once its cached read is a flush interval old.
    @Test func countsAreFlushedAddedAndSeenByOtherCoordinators() async throws {
        try await withTemporaryDirectory { folder in
            let metadata = try EmbeddedMetadataStore(path: folder + "/metadata")
            let time = Atomic<Int64>(50_000_000)
            let clock = WorkClock(wallMillis: { time.load(ordering: .relaxed) }, monotonic: { .zero }, sleep: { _ in })
            func meter(_ id: String) -> TransferMeter {
                TransferMeter(coordinator: id, metadata: metadata, window: window, flushInterval: .seconds(2), clock: clock, logger: Logger(label: "test"))
            }
            let paris = meter("c-fr")
            let berlin = meter("c-de")
            #expect(try await berlin.usage("A").isEmpty)
            paris.record("A", bytes: 100)
            paris.record("B", bytes: 5)
            #expect(window.used(try await paris.usage("A"), at: time.load(ordering: .relaxed)) == 100, "counted where served, before any flush")
            await paris.flush()
            let key = Keyspace.transfer("A", bucket: window.bucket(at: 50_000_000), coordinator: "c-fr")
            #expect(try await metadata.get(key).map { String(decoding: $0.value, as: UTF8.self) } == "100")
            #expect(window.used(try await paris.usage("A"), at: time.load(ordering: .relaxed)) == 100, "not counted twice after its flush")
            #expect(try await berlin.usage("A").isEmpty, "berlin's read is still fresh")
            time.add(2000, ordering: .relaxed)
            #expect(window.used(try await berlin.usage("A"), at: time.load(ordering: .relaxed)) == 100, "read again after an interval")

            // A new meter for the same coordinator (a restart) adds to the stored count.
            let restarted = meter("c-fr")
            time.add(100, ordering: .relaxed)
            restarted.record("A", bytes: 50)
            await restarted.flush()
            let now = time.load(ordering: .relaxed)
            let secondKey = Keyspace.transfer("A", bucket: window.bucket(at: now), coordinator: "c-fr")
            let total = try await metadata.list(prefix: Keyspace.transfers("A")).reduce(Int64(0)) { $0 + Int64(String(decoding: $1.value, as: UTF8.self))! }
            #expect(total == 150, "keys \(key), \(secondKey)")

            // Thirty seconds on, nothing counts, and the next read and flush delete the old keys.
            time.add(31_000, ordering: .relaxed)
            #expect(window.used(try await berlin.usage("A"), at: time.load(ordering: .relaxed)) == 0)
            await berlin.flush()
            #expect(try await metadata.list(prefix: Keyspace.transfers("A")).isEmpty)
            #expect(try await metadata.list(prefix: Keyspace.transfers("B")).count == 1, "B was not read: its key stays until it is")
        }
    }
}
