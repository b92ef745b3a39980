import Foundation

/// The telemetry listener of a daemon (`/metrics`, `/livez`, `/readyz` over plain HTTP): the
/// `telemetry` section of both configuration files. Without it a daemon serves no telemetry.
public struct TelemetryConfiguration: Codable, Sendable, Equatable {
    /// Address to listen on: one only the monitoring network reaches.
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (written to `portFile`).
    public var port: Int = 0
    public var portFile: String?

    public init(host: String = "127.0.0.1", port: Int = 0, portFile: String? = nil) {
        self.host = host
        self.port = port
        self.portFile = portFile
    }

    enum CodingKeys: String, CodingKey { case host, port, portFile = "port_file" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? "127.0.0.1"
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 0
        portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
    }

    func validate(_ fail: (String, String) -> ConfigurationError) throws(ConfigurationError) {
        guard !host.isEmpty else { throw fail("telemetry.host", "must not be empty") }
        guard (0...65_535).contains(port) else { throw fail("telemetry.port", "must be 0...65535, got \(port)") }
    }
}

/// The log lines' format and level: `log_format` (`text` or `json`) and `log_level` (swift-log's
/// names) in both configuration files.
enum LogSettings {
    static let formats = ["text", "json"]
    static let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    static func validate(format: String, level: String, _ fail: (String, String) -> ConfigurationError) throws(ConfigurationError) {
        guard formats.contains(format) else { throw fail("log_format", "must be text or json, got \(format)") }
        guard levels.contains(level) else { throw fail("log_level", "must be one of \(levels.joined(separator: ", ")), got \(level)") }
    }
}
