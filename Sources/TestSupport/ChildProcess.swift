import Foundation
import LocalCluster

#if canImport(Glibc)
import Glibc
#endif

/// A real process started by a test (a daemon), killed at the latest when the test process
/// exits.
public final class ChildProcess: @unchecked Sendable {
    public let pid: Int32
    public let logPath: String
    private let process: Process

    /// Starts `executable` with `arguments`, its output going to `logPath`.
    public init(executable: String, arguments: [String], logPath: String) throws {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        try process.run()
        pid = process.processIdentifier
        self.logPath = logPath
        killAtExit(pid)
    }

    public var isRunning: Bool { process.isRunning }

    /// The exit status, waiting for the process to end.
    public func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// `kill -9`, and waits until it is gone.
    public func kill9() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    /// Its output so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// Path of an executable of this package in the current build folder (debug unless the
/// tests run from a release build).
public func builtExecutable(_ name: String) -> String {
    let candidates = [".build/debug/", ".build/release/", ".build/x86_64-unknown-linux-gnu/debug/"].map { repositoryRoot + "/" + $0 + name }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
}

/// Waits until a file exists and is not empty, then returns its content.
public func awaitFile(_ path: String, timeout: Duration = .seconds(30)) async throws -> String? {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty { return text }
        try await Task.sleep(for: .milliseconds(50))
    }
    return nil
}

nonisolated(unsafe) private var processesToKill: [Int32] = []
private let processesLock = NSLock()

/// Kills the given process when this test process exits, however the tests end.
func killAtExit(_ pid: Int32) {
    processesLock.lock()
    defer { processesLock.unlock() }
    if processesToKill.isEmpty {
        atexit {
            for pid in processesToKill { kill(pid, SIGKILL) }
        }
    }
    processesToKill.append(pid)
}

/// The first port of `count` consecutive free loopback ports, below the kernel's ephemeral
/// range (32768 and up), so that no outgoing connection can take one before a server binds it.
public func freePortBlock(count: Int) -> Int {
    for _ in 0..<200 {
        let base = Int.random(in: 20_000..<(32_000 - count))
        if (base..<(base + count)).allSatisfy(isPortFree) { return base }
    }
    preconditionFailure("no block of \(count) free ports found")
}

/// Whether a TCP port on 127.0.0.1 can be bound now (the launcher's own check).
public func isPortFree(_ port: Int) -> Bool { LocalCluster.isPortFree(port) }
