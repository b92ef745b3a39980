public import CoffreAPI
import CoffreModel
import Foundation
import Synchronization

/// A load generator for drills and benchmarks: workers upload new files and read back ones
/// uploaded before, as a user would, for a while; every operation's start, duration and
/// outcome is recorded; at the end every file that was uploaded is downloaded again and
/// compared with what was sent (`LoadRecord.verified`).
public struct LoadGenerator: Sendable {
    public var duration: Duration
    public var fileBytes: Int
    public var workers: Int
    /// Remote folder the files go to (created).
    public var folder: String
    /// Local folder for the files sent and read back.
    public var scratch: String

    public init(duration: Duration, fileBytes: Int = 256 << 10, workers: Int = 2, folder: String, scratch: String) {
        self.duration = duration
        self.fileBytes = fileBytes
        self.workers = workers
        self.folder = folder
        self.scratch = scratch
    }

    /// Runs the load; `progress` hears (seconds, operations, errors) every few seconds.
    public func run(
        _ client: CoffreClient, _ session: Session, progress: (@Sendable (Int, Int, Int) -> Void)? = nil
    ) async throws -> LoadRecord {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        _ = try await client.mkdir(folder, session)
        let shared = Shared()
        let deadline = ContinuousClock.now + duration
        let (size, folder, scratch) = (fileBytes, folder, scratch)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var generator = SplitMix64(seed: UInt64(worker) &+ UInt64(Date().timeIntervalSince1970 * 1000))
                    var count = 0
                    while ContinuousClock.now < deadline {
                        let name = "w\(worker)-\(count)"
                        count += 1
                        let readable = shared.stored.withLock { $0 }
                        // Every other operation reads a file stored before (once there is one).
                        if count % 2 == 0, !readable.isEmpty {
                            let pick = readable[Int(generator.next() % UInt64(readable.count))]
                            let copy = scratch + "/read-\(worker)"
                            let operation = await Self.timed("get") {
                                try await client.download(folder + "/" + pick, to: copy, session)
                                guard FileManager.default.contentsEqual(atPath: copy, andPath: scratch + "/" + pick) else {
                                    throw ClientError(.corrupt, "\(pick) read back different")
                                }
                            }
                            shared.operations.withLock { $0.append(operation) }
                        } else {
                            var bytes = [UInt8](repeating: 0, count: size)
                            for index in stride(from: 0, to: size, by: 8) {
                                withUnsafeBytes(of: generator.next()) { word in
                                    for offset in 0..<min(8, size - index) { bytes[index + offset] = word[offset] }
                                }
                            }
                            let local = scratch + "/" + name
                            FileManager.default.createFile(atPath: local, contents: Data(bytes))
                            let operation = await Self.timed("put") { _ = try await client.upload(local, to: folder + "/" + name, session) }
                            shared.operations.withLock { $0.append(operation) }
                            if operation.error == nil { shared.stored.withLock { $0.append(name) } }
                        }
                    }
                }
            }
            if let progress {
                group.addTask {
                    let start = ContinuousClock.now
                    while ContinuousClock.now < deadline {
                        try? await Task.sleep(for: min(.seconds(5), deadline - ContinuousClock.now))
                        let (done, failed) = shared.operations.withLock { ($0.count, $0.filter { $0.error != nil }.count) }
                        progress(Int((ContinuousClock.now - start).components.seconds), done, failed)
                    }
                }
            }
        }
        // Every file stored reads back bit-exact.
        var failures: [String] = []
        let names = shared.stored.withLock { $0 }
        for name in names {
            let copy = scratch + "/verify"
            do {
                try await client.download(folder + "/" + name, to: copy, session)
                if !FileManager.default.contentsEqual(atPath: copy, andPath: scratch + "/" + name) { failures.append("\(name): differs") }
            } catch {
                failures.append("\(name): \(error)")
            }
        }
        return LoadRecord(operations: shared.operations.withLock { $0 }.sorted { $0.at < $1.at }, verified: names.count - failures.count, verificationFailures: failures)
    }

    private final class Shared: Sendable {
        let operations = Mutex<[LoadRecord.Operation]>([])
        let stored = Mutex<[String]>([])
    }

    private static func timed(_ kind: String, _ body: () async throws -> Void) async -> LoadRecord.Operation {
        let at = Int64(Date().timeIntervalSince1970 * 1000)
        let start = ContinuousClock.now
        var code: String?
        do { try await body() } catch {
            code = (error as? any CodedError)?.code.rawValue ?? "error"
        }
        let elapsed = ContinuousClock.now - start
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return LoadRecord.Operation(kind: kind, at: at, milliseconds: milliseconds, error: code)
    }
}
