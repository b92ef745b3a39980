public import CoffreModel
public import Foundation
import Yams

/// A configuration that cannot be used: which file, which key, why.
public struct ConfigurationError: CodedError {
    public let file: String
    public let key: String?
    public let reason: String

    public init(file: String, key: String?, reason: String) {
        self.file = file
        self.key = key
        self.reason = reason
    }

    public init(decoding error: DecodingError, file: String) {
        func path(_ context: DecodingError.Context) -> String { context.codingPath.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            self.init(file: file, key: parent.isEmpty ? key.stringValue : parent + "." + key.stringValue, reason: "is required")
        case .typeMismatch(let type, let context):
            self.init(file: file, key: path(context), reason: "must be \(type)")
        case .valueNotFound(let type, let context):
            self.init(file: file, key: path(context), reason: "must be \(type), got nothing")
        case .dataCorrupted(let context):
            self.init(file: file, key: path(context), reason: context.debugDescription)
        @unknown default:
            self.init(file: file, key: nil, reason: "\(error)")
        }
    }

    public var code: ErrorCode { .invalidArgument }
    public var message: String { description }

    public var description: String {
        "\(file): " + (key.map { "\($0): " } ?? "") + reason
    }
}

/// Reads a YAML configuration file into `type`; every failure names the file, the key and
/// the reason.
public func loadYAMLConfiguration<T: Decodable>(_ type: T.Type, file: String) throws(ConfigurationError) -> T {
    guard let data = FileManager.default.contents(atPath: file) else {
        throw ConfigurationError(file: file, key: nil, reason: "cannot read the file")
    }
    return try decodeYAMLConfiguration(type, from: data, file: file)
}

/// Decodes YAML text (a file's contents) into `type`; failures name `file`, the key and the
/// reason. Never traps, whatever the bytes (fuzzed: `coffre-fuzz configuration`).
public func decodeYAMLConfiguration<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws(ConfigurationError) -> T {
    do {
        return try YAMLDecoder().decode(type, from: data)
    } catch let error as DecodingError {
        throw ConfigurationError(decoding: error, file: file)
    } catch {
        throw ConfigurationError(file: file, key: nil, reason: "not valid YAML: \(error)")
    }
}
