public import Hummingbird
import HTTPTypes
import Metrics
import NIOCore
public import Telemetry

/// Counts every request by route template, method and status code, times it to the last byte
/// of its answer, and counts the body bytes read and written.
///
/// Add it first (outermost), so that it sees the answers `ErrorMiddleware` makes of errors.
/// Routes are Hummingbird's templates (`/v1/nodes/{id}/content`), so the label set stays
/// bounded whatever the clients send; a path no route matched is `unmatched`.
public struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: MetricsRegistry
    /// The methods counted by name; any other (HTTP/2 takes any token) is `other`, so that a
    /// client cannot add series.
    static func label(of method: HTTPRequest.Method) -> String {
        switch method {
        case .get, .head, .put, .post, .delete, .options, .patch: method.rawValue
        default: "other"
        }
    }

    public init(metrics: MetricsRegistry) { self.metrics = metrics }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let route = context.endpointPath ?? "unmatched"
        let method = Self.label(of: request.method)
        var request = request
        if request.method != .get && request.method != .head {
            let received = metrics.counter(.httpReceivedBytes, route)
            request.body = RequestBody(asyncSequence: request.body.map { @Sendable buffer in
                received.increment(by: buffer.readableBytes)
                return buffer
            })
        }
        let metrics = self.metrics
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            // Only when nothing outside this middleware turns errors into answers.
            metrics.counter(.httpRequests, route, method, "500").increment()
            metrics.timer(.httpRequestDuration, route, method).record(ContinuousClock.now - start)
            throw error
        }
        let code = String(response.status.code)
        let body = response.body
        let sent = metrics.counter(.httpSentBytes, route)
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            defer {
                metrics.counter(.httpRequests, route, method, code).increment()
                metrics.timer(.httpRequestDuration, route, method).record(ContinuousClock.now - start)
            }
            try await body.write(writer.map { @Sendable buffer in
                sent.increment(by: buffer.readableBytes)
                return buffer
            })
        }
        return response
    }
}
