import Foundation
import Synchronization
import HTTPService
import Testing

@Suite struct ReadinessTests {
    /// A check that does not answer (a disk read on NIO's thread pool cannot be cancelled) is
    /// reported late at the limit, and the probe does not wait for it.
    ///
    /// No clock in the assertion: the hung check is released only after the probe has answered,
    /// so a probe that waited for it would answer `ok` (after the one-minute safety release)
    /// instead of `late`, however loaded the machine.
    @Test func aHungCheckIsReportedLateAtTheLimit() async {
        let release = Release()
        let answer = await Readiness.check(within: .milliseconds(200), late: "late") {
            // Waits for another thread, ignoring cancellation, as a hung read on NIO's thread
            // pool does (without holding one of the few cooperative threads).
            await withCheckedContinuation { continuation in
                release.set(continuation)
                DispatchQueue.global().asyncAfter(deadline: .now() + 60) { release.give() }
            }
            return "ok"
        }
        release.give()
        #expect(answer == "late", "the probe waited for the hung check")
    }

    @Test func aQuickCheckGivesItsOwnAnswer() async {
        #expect(await Readiness.check(within: .seconds(5), late: "late") { "ok" } == "ok")
        #expect(await Readiness.check(within: .seconds(5), late: "late") { "the disk is full" } == "the disk is full")
        let ready = Readiness(checks: ["store": "ok", "certificates": "ok"])
        let notReady = Readiness(checks: ["store": "the disk is full", "certificates": "ok"])
        #expect(ready.ready && !notReady.ready)
    }
}

/// Lets a continuation go once, whichever of its releases comes first (the other is a no-op);
/// a release before the continuation is set lets it go as soon as it is set.
private final class Release: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<Void, Never>?, released: Bool)>((nil, false))

    func set(_ continuation: CheckedContinuation<Void, Never>) {
        let now = state.withLock { state -> Bool in
            if state.released { return true }
            state.continuation = continuation
            return false
        }
        if now { continuation.resume() }
    }

    func give() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.released else { return nil }
            state.released = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }
}
