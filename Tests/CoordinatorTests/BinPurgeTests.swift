import Coordinator
import Testing

/// The leader's choice of rubbish bin entries to purge: by time, oldest first, within budget.
@Suite struct BinPurgeTests {
    @Test func entriesPastTheRetentionAreDueOldestFirstWithinTheBudget() {
        let keys = [
            Keyspace.binOrder(1_000, "A", "n1"), Keyspace.binOrder(2_000, "B", "n2"), "binorder/garbage", Keyspace.binOrder(3_000, "A", "n3"),
            Keyspace.binOrder(9_000, "C", "n4"),
        ]
        let due = BinPurge.due(keys, now: 10_000, retention: 7_000, budget: 10)
        #expect(due == [BinPurge.Due(trashedAt: 1_000, account: "A", node: "n1"), BinPurge.Due(trashedAt: 2_000, account: "B", node: "n2"), BinPurge.Due(trashedAt: 3_000, account: "A", node: "n3")])
        #expect(BinPurge.due(keys, now: 10_000, retention: 7_000, budget: 2).count == 2)
        #expect(BinPurge.due(keys, now: 10_000, retention: 9_001, budget: 10).isEmpty, "nothing is old enough")
        #expect(BinPurge.due(keys, now: 16_000, retention: 7_000, budget: 10).map(\.node) == ["n1", "n2", "n3", "n4"], "at the millisecond")
    }
}
