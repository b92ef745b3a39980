public import CoffreAPI
public import CoffreModel
import Foundation
public import Hummingbird
public import HTTPTypes
public import NIOCore
import NIOHTTP1
import NIOSSL

/// Answers `value` as JSON (keys sorted, so answers are stable).
public func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = try encoder.encode(value)
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// Decodes a JSON request body of at most `limit` bytes; bad JSON is `invalid_argument`, a
/// longer body `limit_exceeded` (413).
public func decodeBody<T: Decodable>(_ type: T.Type, _ request: Request, limit: Int = Limits.jsonBodyBytesMax) async throws -> T {
    if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
        throw APIError(.limitExceeded, "request body of \(declared) bytes exceeds \(limit) bytes")
    }
    let body: ByteBuffer
    do {
        body = try await request.body.collect(upTo: limit)
    } catch is NIOTooManyBytesError {
        throw APIError(.limitExceeded, "request body exceeds \(limit) bytes")
    }
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
    /// Header fields the answer carries besides the body (`Retry-After`, `Content-Range`).
    public let headers: HTTPFields
    /// The notice behind a takedown's refusal, for the error body.
    public let takedown: TakedownNotice?

    public init(_ code: ErrorCode, _ message: String, headers: HTTPFields = [:], takedown: TakedownNotice? = nil) {
        self.code = code
        self.message = message
        self.headers = headers
        self.takedown = takedown
    }

    public var description: String { "\(code): \(message)" }
}

/// An error whose answer also closes the connection: the request's body is not read (an
/// upload declared far over the quota), and `ConnectionGuard` closes after the answer.
public struct CloseAfterAnswer: Error {
    public let error: any Error
    public init(_ error: any Error) { self.error = error }
}

/// Turns every error into the API's JSON error body, so clients always get a stable code;
/// the daemon keeps serving. It also refuses a URL over `Limits.urlBytesMax`.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let length = request.uri.description.utf8.count
            guard length <= Limits.urlBytesMax else {
                throw APIError(.limitExceeded, "URL of \(length) bytes exceeds \(Limits.urlBytesMax)")
            }
            return try await next(request, context)
        } catch {
            let closing = error as? CloseAfterAnswer
            let error = closing?.error ?? error
            let (code, message) = Self.classify(error)
            let status = HTTPResponse.Status(code: APIErrorBody.status(for: code))
            if status.code >= 500, !(error is any CodedError) {
                context.logger.error("request failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(error)"])
            }
            var response = try jsonResponse(APIErrorBody(code: code, message: message, takedown: (error as? APIError)?.takedown), status: status)
            if let extra = (error as? APIError)?.headers { response.headers.append(contentsOf: extra) }
            if closing != nil { response.headers[.connection] = "close" }
            return response
        }
    }

    /// The code and message for an error: ours carry them; what the HTTP layer throws while
    /// a handler reads a body (bad framing, a body cut short, too many bytes) is the client's
    /// mistake (4xx); anything else is ours, answered without internal type names.
    public static func classify(_ error: any Error) -> (ErrorCode, String) {
        switch error {
        case let error as any CodedError: (error.code, error.message)
        case let error as HTTPError where error.status == .notFound: (.notFound, "no such path")
        case let error as HTTPError where error.status == .contentTooLarge: (.limitExceeded, "request body too large")
        case let error as HTTPError where error.status == .methodNotAllowed: (.badRequest, "method not allowed here")
        case let error as HTTPError: (error.status.code < 500 ? .invalidArgument : .storageFailure, error.body ?? "\(error.status)")
        case let error as HTTPParserError: (error == .headerOverflow ? .limitExceeded : .badRequest, "malformed HTTP request: \(describe(error))")
        case is NIOTooManyBytesError: (.limitExceeded, "request body too large")
        case is CancellationError: (.unavailable, "the request was cancelled (the server is shutting down)")
        case let error as ChannelError where error == .ioOnClosedChannel || error == .eof || error == .inputClosed:
            (.badRequest, "the connection closed before the request was whole")
        case let error as NIOSSLError where error == .uncleanShutdown:
            (.badRequest, "the connection closed (without TLS close_notify) before the request was whole")
        default: (.storageFailure, "internal error")
        }
    }

}

/// What the HTTP parser found wrong, in words (not its type names).
func describe(_ error: HTTPParserError) -> String {
    switch error {
    case .invalidChunkSize: "invalid chunk size"
    case .invalidContentLength: "invalid Content-Length"
    case .unexpectedContentLength: "Content-Length where none may be"
    case .headerOverflow: "headers too large (at most \(Limits.requestHeaderBytesMax) bytes, \(Limits.requestHeaderCountMax) fields)"
    case .invalidEOFState, .closedConnection: "the connection closed before the request was whole"
    case .invalidMethod: "invalid method"
    case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort: "invalid URL"
    case .invalidHeaderToken: "invalid header"
    case .invalidVersion: "unsupported HTTP version"
    default: "malformed request"
    }
}

/// The request context of every daemon: Hummingbird's, with the client's address (for limits
/// per source address) and its connection.
public struct ServiceContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The connection (for an HTTP/2 stream, the stream's connection): what TLS proved of the
    /// client, its certificate, is read from it.
    public let connection: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress ?? source.channel.parent?.remoteAddress
        // An HTTP/2 stream's parent is its connection (whose parent is the listener); an
        // HTTP/1.1 connection's parent is the listener itself.
        if let parent = source.channel.parent, parent.parent != nil { connection = parent } else { connection = source.channel }
    }

    /// The client's IP address, as text.
    public var clientAddress: String { remoteAddress?.ipAddress ?? "unknown" }
}
