import Foundation
public import Logging
import Synchronization

/// How a daemon writes its log: `text` (swift-log's stream format, for people) or `json` (one
/// object per line, for collectors).
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// A log handler that writes one JSON object per line: `time` (UTC, milliseconds), `level`,
/// `logger` (the logger's label), `message`, then every metadata key as it is (dotted names
/// such as `node.id` stay flat; nested metadata is flattened with dots).
///
/// Secrets never reach it: no code logs a key, token, password or link secret
/// (`Tests/IntegrationTests/LogSecretsTests` greps a cluster's logs for them).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    let label: String
    let write: @Sendable (String) -> Void

    /// - Parameter write: takes each line, with its newline (standard error by default).
    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadataProvider?.get() ?? [:]
        fields.merge(metadata) { _, new in new }
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        var line = "{\"time\":" + Self.quoted(Self.timestamp(Date()))
        line += ",\"level\":" + Self.quoted(event.level.rawValue)
        line += ",\"logger\":" + Self.quoted(label)
        line += ",\"message\":" + Self.quoted(event.message.description)
        var flat: [(String, String)] = []
        for (key, value) in fields { Self.flatten(key, value, into: &flat) }
        for (key, value) in flat.sorted(by: { $0.0 < $1.0 }) where !["time", "level", "logger", "message"].contains(key) {
            line += "," + Self.quoted(key) + ":" + Self.quoted(value)
        }
        write(line + "}\n")
    }

    static func flatten(_ key: String, _ value: Logger.Metadata.Value, into flat: inout [(String, String)]) {
        switch value {
        case .string(let text): flat.append((key, text))
        case .stringConvertible(let value): flat.append((key, value.description))
        case .array(let values): flat.append((key, "[" + values.map(\.description).joined(separator: ", ") + "]"))
        case .dictionary(let entries): for (inner, value) in entries { flatten(key + "." + inner, value, into: &flat) }
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped.
    static func quoted(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }

    /// Writes a line to standard error in one call, so lines of several threads never interleave.
    public static let standardError: @Sendable (String) -> Void = { line in
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { if errno == EINTR { continue } else { return } }
                offset += written
            }
        }
    }
}

/// Sets every logger of the process to `format` at `level`.
public func bootstrapLogging(format: LogFormat, level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler: any LogHandler =
            switch format {
            case .json: JSONLogHandler(label: label)
            case .text: StreamLogHandler.standardError(label: label)
            }
        handler.logLevel = level
        return handler
    }
}
