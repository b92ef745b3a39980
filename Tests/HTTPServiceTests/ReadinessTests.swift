import Foundation
import HTTPService
import Testing

@Suite struct ReadinessTests {
    /// A check that does not answer (a disk read on NIO's thread pool cannot be cancelled) is
    /// reported late at the limit, and the probe does not wait for it.
    @Test func aHungCheckIsReportedLateAtTheLimit() async {
        let start = ContinuousClock.now
        let answer = await Readiness.check(within: .milliseconds(200), late: "late") {
            // Waits 10 s for another thread, ignoring cancellation, as a hung read on NIO's
            // thread pool does (without holding one of the few cooperative threads).
            await withCheckedContinuation { continuation in
                DispatchQueue.global().asyncAfter(deadline: .now() + 10) { continuation.resume() }
            }
            return "ok"
        }
        #expect(answer == "late")
        // Far below the hung check's 10 s, with room for a loaded machine's scheduling.
        #expect(ContinuousClock.now - start < .seconds(5), "the probe waited for the hung check")
    }

    @Test func aQuickCheckGivesItsOwnAnswer() async {
        #expect(await Readiness.check(within: .seconds(5), late: "late") { "ok" } == "ok")
        #expect(await Readiness.check(within: .seconds(5), late: "late") { "the disk is full" } == "the disk is full")
        let ready = Readiness(checks: ["store": "ok", "certificates": "ok"])
        let notReady = Readiness(checks: ["store": "the disk is full", "certificates": "ok"])
        #expect(ready.ready && !notReady.ready)
    }
}
