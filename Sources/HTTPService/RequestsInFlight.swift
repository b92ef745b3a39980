import CoffreModel
import Foundation
import HummingbirdHTTP2
public import HummingbirdCore
public import Hummingbird
import NIOSSL
import NIOCore
import NIOHTTP1
import NIOTLS
import Logging
import NIOHTTPTypes
import HTTPTypes
import CoffreAPI
import Synchronization

/// Sheds requests past `ConnectionLimits.requestsInFlightMax`: 503 `unavailable` with
/// `Retry-After: 1`, before any work. A request counts from its headers until its answer's
/// body is written, or dropped unwritten (a closed connection): the place is given back when
/// the answer is released, so it cannot leak.
///
/// Health checks are never shed (`exempt`): a busy daemon must not look dead to the probes
/// that decide whether its data is rebuilt elsewhere. A shed request with a body closes its
/// connection, so that the body it brought is not read only to be dropped.
public struct RequestsInFlightMiddleware<Context: RequestContext>: RouterMiddleware {
    let counter: ConnectionCounter
    let exempt: Set<String>

    public init(counter: ConnectionCounter, exempt: Set<String> = ["/v1/health"]) {
        self.counter = counter
        self.exempt = exempt
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if exempt.contains(request.uri.path) { return try await next(request, context) }
        guard counter.startRequest() else {
            let error = APIError(
                .unavailable, "this daemon is serving \(counter.limits.requestsInFlightMax) requests, its most at once: retry shortly",
                headers: [.retryAfter: "1"])
            let hasBody = (request.headers[.contentLength].flatMap(Int.init) ?? 0) > 0 || request.headers[.transferEncoding] != nil
            throw hasBody ? CloseAfterAnswer(error) : error
        }
        let place = RequestPlace(counter)
        var response = try await next(request, context)
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            try await body.write(writer)
            place.release()
        }
        return response
    }
}

/// One request's place; given back once, when the request's answer is written or released.
final class RequestPlace: Sendable {
    let counter: ConnectionCounter
    let released = Atomic<Bool>(false)

    init(_ counter: ConnectionCounter) { self.counter = counter }

    func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) { counter.endRequest() }
    }

    deinit { release() }
}
