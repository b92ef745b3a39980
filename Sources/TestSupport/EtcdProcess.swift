import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real single-member etcd (Debian's `etcd-server`) on loopback, for tests.
///
/// One per test process, started on first use and killed when the process exits.
public final class EtcdProcess: Sendable {
    public let clientURL: String
    public let dataDirectory: String
    let pid: Int32

    /// The shared instance (started once; a start failure fails every test that needs it).
    public static func shared() async throws -> EtcdProcess {
        try await SharedEtcd.instance.get()
    }

    /// Starts etcd on free loopback ports and waits until it answers `/health`.
    public static func start(extra: [String] = []) async throws -> EtcdProcess {
        var lastError: (any Error)?
        for _ in 0..<5 {
            let client = freePortBlock(count: 2)
            do {
                return try await start(clientPort: client, peerPort: client + 1, extra: extra)
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    static func start(clientPort: Int, peerPort: Int, extra: [String] = []) async throws -> EtcdProcess {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("coffre-etcd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let client = "http://127.0.0.1:\(clientPort)"
        let peer = "http://127.0.0.1:\(peerPort)"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "etcd", "--name", "test", "--data-dir", folder + "/data",
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "test=\(peer)", "--log-level", "error",
        ] + extra
        _ = FileManager.default.createFile(atPath: folder + "/etcd.log", contents: nil)
        let log = FileHandle(forWritingAtPath: folder + "/etcd.log")!
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let etcd = EtcdProcess(clientURL: client, dataDirectory: folder, pid: process.processIdentifier)
        killAtExit(etcd.pid)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if !process.isRunning { break }
            if (try? runProcess("curl", ["-sf", "-m", "1", client + "/health"]))?.output.contains("true") == true {
                return etcd
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        etcd.stop()
        let text = (try? String(contentsOfFile: folder + "/etcd.log", encoding: .utf8)) ?? ""
        throw EtcdStartError(message: "etcd on \(client) did not become healthy within 20 s: \(text.suffix(2000))")
    }

    init(clientURL: String, dataDirectory: String, pid: Int32) {
        self.clientURL = clientURL
        self.dataDirectory = dataDirectory
        self.pid = pid
    }

    /// Kills etcd (SIGKILL) and removes its data.
    public func stop() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }
}

public struct EtcdStartError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

private actor SharedEtcd {
    static let instance = SharedEtcd()
    private var task: Task<EtcdProcess, any Error>?

    func get() async throws -> EtcdProcess {
        if task == nil { task = Task { try await EtcdProcess.start() } }
        return try await task!.value
    }
}

/// Waits until `condition` holds, checking every `interval`, or fails after `timeout`.
public func awaitCondition(
    timeout: Duration = .seconds(10), interval: Duration = .milliseconds(100), _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}
