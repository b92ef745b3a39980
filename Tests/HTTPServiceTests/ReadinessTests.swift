import Foundation
import HTTPService
import Testing

@Suite struct ReadinessTests {
    /// A check that does not answer (a hung disk read cannot be cancelled) is reported late at
    /// the limit, and the probe does not wait for it.
    @Test func aHungCheckIsReportedLateAtTheLimit() async {
        let start = ContinuousClock.now
        let answer = await Readiness.check(within: .milliseconds(200), late: "late") {
            // Blocks its thread, as a disk read would, and ignores cancellation.
            blockThread(seconds: 3)
            return "ok"
        }
        #expect(answer == "late")
        #expect(ContinuousClock.now - start < .seconds(2), "the probe waited for the hung check")
    }

    @Test func aQuickCheckGivesItsOwnAnswer() async {
        #expect(await Readiness.check(within: .seconds(5), late: "late") { "ok" } == "ok")
        #expect(await Readiness.check(within: .seconds(5), late: "late") { "the disk is full" } == "the disk is full")
        let ready = Readiness(checks: ["store": "ok", "certificates": "ok"])
        let notReady = Readiness(checks: ["store": "the disk is full", "certificates": "ok"])
        #expect(ready.ready && !notReady.ready)
    }
}

/// Blocks the calling thread (not a task's suspension): what a hung read does.
func blockThread(seconds: Double) { usleep(UInt32(seconds * 1_000_000)) }
