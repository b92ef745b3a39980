public import CoffreAPI
import Foundation
public import Hummingbird
import HTTPTypes
public import Logging
import NIOCore
import Synchronization
public import Telemetry

/// What `/readyz` answers: ready when every check is `ok`; a failed check says why.
public struct Readiness: Codable, Hashable, Sendable {
    public var ready: Bool { checks.values.allSatisfy { $0 == "ok" } }
    /// A check's name (`certificates`, `store`, `metadata`, `nodes`) and `ok` or what is wrong.
    public var checks: [String: String]

    public init(checks: [String: String]) { self.checks = checks }

    /// Runs one check, bounded: its answer (`ok` or what is wrong), or `late` when it has not
    /// answered within `limit`. The check runs apart and is not awaited past the limit (a disk
    /// read that hangs cannot be cancelled, and must not hang the probe).
    public static func check(
        within limit: Duration, late: String, _ body: @escaping @Sendable () async -> String
    ) async -> String {
        let answer = AnswerOnce()
        return await withCheckedContinuation { continuation in
            answer.set(continuation)
            Task { answer.give(await body()) }
            Task {
                try? await Task.sleep(for: limit)
                answer.give(late)
            }
        }
    }

    private enum CodingKeys: String, CodingKey { case ready, checks }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ready, forKey: .ready)
        try container.encode(checks, forKey: .checks)
    }
    public init(from decoder: any Decoder) throws {
        checks = try decoder.container(keyedBy: CodingKeys.self).decode([String: String].self, forKey: .checks)
    }
}

/// The first of two answers, given to a continuation once.
private final class AnswerOnce: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<String, Never>?, done: Bool)>((nil, false))

    func set(_ continuation: CheckedContinuation<String, Never>) { state.withLock { $0.continuation = continuation } }

    func give(_ answer: String) {
        let continuation = state.withLock { state -> CheckedContinuation<String, Never>? in
            guard !state.done else { return nil }
            state.done = true
            return state.continuation
        }
        continuation?.resume(returning: answer)
    }
}

/// The telemetry listener: `/metrics` (Prometheus text), `/livez` and `/readyz`, over plain
/// HTTP on an address of its own, apart from the client and cluster APIs.
///
/// Plain HTTP because scrapers and kubelet probes speak it and nothing it answers is secret
/// (counts and states, no ids of files or accounts); bind it to an address only the monitoring
/// network reaches (`metrics_host`, Docs/metrics.md).
public enum TelemetryListener {
    /// - Parameters:
    ///   - readiness: the daemon's checks, each bounded in time by the daemon.
    public static func application(
        host: String, port: Int, portFile: String?, metrics: MetricsRegistry, logger: Logger,
        readiness: @escaping @Sendable () async -> Readiness
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        router.get("/livez") { _, _ in try jsonResponse(["status": "ok"]) }
        router.get("/readyz") { _, _ in
            let answer = await readiness()
            return try jsonResponse(answer, status: answer.ready ? .ok : .serviceUnavailable)
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "coffre-telemetry"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                if let portFile { try? String(bound).write(toFile: portFile, atomically: true, encoding: .utf8) }
                logger.info("telemetry listening", metadata: ["telemetry.port": "\(bound)"])
            },
            logger: logger)
    }
}

extension MetricsRegistry {
    /// The connection counters of a daemon's listeners, as metrics.
    public func record(_ stats: ConnectionStats) {
        set(.connectionsOpen, to: Double(stats.open))
        advance(.connectionsRefused, to: Int64(stats.refused))
        advance(.connectionsCut, "handshake", to: Int64(stats.slowHandshakes))
        advance(.connectionsCut, "headers", to: Int64(stats.slowHeaders))
        advance(.connectionsCut, "body", to: Int64(stats.slowBodies))
        set(.requestsInFlight, to: Double(stats.requestsInFlight))
        advance(.requestsShed, to: Int64(stats.shed))
    }
}
