import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// The page a share link opens in a browser: `GET /l/ID` (Web/link.html, compiled in).
///
/// The page is the same static bytes for every link; its script reads the link id from the
/// path and the secret from the fragment, which a browser never sends. Everything it needs is
/// inline, so the Content-Security-Policy allows nothing but that script and style (by hash)
/// and requests to this origin: no third-party code can run beside the key.
enum LinkPage {
    static let html: [UInt8] = PackageResources.link_html

    /// `default-src 'none'` with the inline script and style allowed by their SHA-256.
    static let contentSecurityPolicy: String = {
        let text = String(decoding: html, as: UTF8.self)
        let script = hash(of: inline("script", in: text))
        let style = hash(of: inline("style", in: text))
        return "default-src 'none'; script-src '\(script)'; style-src '\(style)'; connect-src 'self'; img-src 'none'; "
            + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }()

    /// The text between `<tag>` and `</tag>` (the page has one of each).
    static func inline(_ tag: String, in text: String) -> String {
        guard let open = text.range(of: "<\(tag)>"), let close = text.range(of: "</\(tag)>", range: open.upperBound..<text.endIndex) else {
            preconditionFailure("Web/link.html has no <\(tag)>")
        }
        return String(text[open.upperBound..<close.lowerBound])
    }

    static func hash(of source: String) -> String {
        "sha256-" + Data(SHA256.hash(data: Data(source.utf8))).base64EncodedString()
    }

    /// The page, with the headers that keep it alone: CSP, no referrer (the URL's path names
    /// the link), no sniffing, no framing, not cached by shared caches.
    static func response(status: HTTPResponse.Status) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        headers[.cacheControl] = "private, no-cache"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: html)))
    }

    /// Whether a request asks for the page rather than JSON: a browser's Accept names
    /// text/html; a client that asks only for JSON gets the link as `GET /v1/l/ID` gives it.
    static func wantsPage(_ request: Request) -> Bool {
        guard let accept = request.headers[.accept] else { return true }
        return accept.contains("text/html") || !accept.contains("application/json")
    }
}
