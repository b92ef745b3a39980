import CoffreAPI
public import CoffreModel
import Foundation
import Yams
public import Hummingbird
public import HTTPTypes
import NIOCore

/// Answers `value` as JSON (keys sorted, so answers are stable).
public func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = try encoder.encode(value)
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// Decodes a JSON request body of at most `limit` bytes; bad JSON is `invalid_argument`.
public func decodeBody<T: Decodable>(_ type: T.Type, _ request: Request, limit: Int = 1 << 20) async throws -> T {
    let body = try await request.body.collect(upTo: limit)
    do {
        return try JSONDecoder().decode(type, from: Data(body.readableBytesView))
    } catch let error as DecodingError {
        throw APIError(.invalidArgument, "request body is not a valid \(type): \(describe(error))")
    } catch {
        throw APIError(.invalidArgument, "request body is not valid JSON")
    }
}

private func describe(_ error: DecodingError) -> String {
    switch error {
    case .keyNotFound(let key, _): "missing \(key.stringValue)"
    case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
        (context.codingPath.map(\.stringValue).joined(separator: ".") + " " + context.debugDescription).trimmingCharacters(in: .whitespaces)
    @unknown default: "\(error)"
    }
}

/// An error answered as `APIErrorBody` JSON with the status of its code.
public struct APIError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Turns every error into the API's JSON error body, so clients always get a stable code;
/// the daemon keeps serving.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let (code, message) = Self.classify(error)
            let status = HTTPResponse.Status(code: APIErrorBody.status(for: code))
            return try jsonResponse(APIErrorBody(code: code, message: message), status: status)
        }
    }

    static func classify(_ error: any Error) -> (ErrorCode, String) {
        switch error {
        case let error as any CodedError: (error.code, error.message)
        case let error as HTTPError where error.status == .notFound: (.notFound, "no such path")
        case let error as HTTPError where error.status == .contentTooLarge: (.limitExceeded, "request body too large")
        case let error as HTTPError: (error.status.code < 500 ? .invalidArgument : .storageFailure, error.body ?? "\(error.status)")
        default: (.storageFailure, "\(error)")
        }
    }
}

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
    do {
        return try YAMLDecoder().decode(type, from: data)
    } catch let error as DecodingError {
        throw ConfigurationError(decoding: error, file: file)
    } catch {
        throw ConfigurationError(file: file, key: nil, reason: "not valid YAML: \(error)")
    }
}
