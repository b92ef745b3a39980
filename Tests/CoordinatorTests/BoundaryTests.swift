import CoffreModel
import Coordinator
import HTTPService
import Testing

/// What the coordinator accepts at its boundary, decided without I/O: byte ranges as RFC 9110
/// reads them, and the sign-in rate limiter.
@Suite struct BoundaryTests {
    func code(_ text: String, length: Int64) -> ErrorCode? {
        do {
            _ = try CoordinatorServer.parseRange(text, length: length)
            return nil
        } catch let error as APIError {
            return error.code
        } catch {
            return .storageFailure
        }
    }

    @Test func rangesFollowRFC9110() throws {
        #expect(try CoordinatorServer.parseRange("bytes=0-9", length: 100) == 0..<10)
        #expect(try CoordinatorServer.parseRange("bytes=90-", length: 100) == 90..<100)
        #expect(try CoordinatorServer.parseRange("bytes=-10", length: 100) == 90..<100)
        #expect(try CoordinatorServer.parseRange("bytes=-1000", length: 100) == 0..<100, "a suffix longer than the file is all of it")
        #expect(try CoordinatorServer.parseRange("bytes=50-5000", length: 100) == 50..<100, "an end past the file is clamped")
        #expect(try CoordinatorServer.parseRange("bytes=99-99", length: 100) == 99..<100)
        // Selects no byte: 416 with Content-Range bytes */LENGTH.
        for text in ["bytes=100-", "bytes=100-200", "bytes=-0"] { #expect(code(text, length: 100) == .rangeNotSatisfiable, "\(text)") }
        #expect(code("bytes=0-", length: 0) == .rangeNotSatisfiable, "nothing is satisfiable in an empty file")
        do {
            _ = try CoordinatorServer.parseRange("bytes=200-", length: 100)
        } catch let error as APIError {
            #expect(error.headers[.contentRange] == "bytes */100")
        }
        // Malformed: 400.
        for text in ["bytes=+1-2", "bytes=5-1", "items=0-1", "bytes=0-1,2-3", "bytes= 0-1", "bytes=a-b", "bytes=-", "bytes=1", "bytes=99999999999999999999-"] {
            #expect(code(text, length: 100) == .badRequest, "\(text)")
        }
    }

    @Test func signInsAreLimitedPerKeyAndRecoverWithTime() {
        var limiter = RateLimiter(keysMax: 3)
        let rule = RateLimiter.Rule(burst: 3, perMinute: 6)
        for _ in 0..<3 { #expect(limiter.take("alice", rule, now: 0) == nil) }
        let wait = limiter.take("alice", rule, now: 0)
        #expect(wait == 10, "one attempt comes back every 10 s at 6 a minute")
        #expect(limiter.take("bob", rule, now: 0) == nil, "another key has its own bucket")
        #expect(limiter.take("alice", rule, now: 9_000) != nil)
        #expect(limiter.take("alice", rule, now: 10_000) == nil, "an attempt earned back after 10 s")
        #expect(limiter.take("alice", rule, now: 10_000) != nil)
        // Bounded: new keys push out full buckets first, never a limited one.
        #expect(limiter.take("carol", rule, now: 10_000) == nil)
        #expect(limiter.take("dave", rule, now: 10_000) == nil)
        #expect(limiter.take("alice", rule, now: 10_000) != nil, "alice is still limited after other keys came")
    }
}
