import CoffreModel
import Testing
import Transparency

/// The transparency log's rules: a chain built by `entry(after:)` verifies, and every kind of
/// after-the-fact change (an edited field, a re-hashed entry, a removed or inserted entry,
/// another key) is found and named by its entry.
@Suite struct TransparencyLogTests {
    static let log = TransparencyLog(adminToken: "an admin token of the tests")

    static func event(_ action: String, _ n: Int, reason: String = "copyright", scope: String = "global") -> TransparencyEvent {
        TransparencyEvent(
            action: action, takedown: "000000000000\(n)-abcdefgh", target: "link", subject: TransparencyLog.subject("link-\(n)"), reason: reason,
            scope: scope, notice: "DMCA-\(n)")
    }

    static func chain(_ events: [TransparencyEvent], log: TransparencyLog = log) -> [TransparencyEntry] {
        var entries: [TransparencyEntry] = []
        for (i, event) in events.enumerated() {
            let head = entries.last.map { TransparencyHead(seq: $0.seq, hash: $0.hash) }
            entries.append(log.entry(after: head, at: 1_700_000_000_000 + Int64(i), event))
        }
        return entries
    }

    static let events = [
        event("takedown", 1), event("takedown", 2, reason: "illegal", scope: "country:FR"), event("appeal", 1), event("restore", 1),
        event("takedown", 3, reason: "copyright", scope: "country:FR"),
    ]

    @Test func aChainVerifiesAndIsCounted() {
        let entries = Self.chain(Self.events)
        let report = TransparencyLog.verify(entries, trusted: [Self.log.publicKey])
        #expect(report.valid && report.problems.isEmpty && report.entries == 5)
        #expect(report.byAction == ["takedown": 3, "appeal": 1, "restore": 1])
        #expect(report.byReason == ["copyright": 2, "illegal": 1])
        #expect(report.byScope == ["global": 1, "country:FR": 2])
        #expect(report.head == entries.last?.hash && report.keys == [Self.log.publicKey])
        #expect(entries.first?.previous == TransparencyLog.genesis && entries[1].previous == entries[0].hash)
    }

    @Test func anEditedFieldIsFound() throws {
        var entries = Self.chain(Self.events)
        let e = entries[2]
        entries[2] = TransparencyEntry(
            seq: e.seq, at: e.at, action: e.action, takedown: e.takedown, target: e.target, subject: e.subject, reason: "other", scope: e.scope,
            notice: e.notice, previous: e.previous, key: e.key, hash: e.hash, signature: e.signature)
        let report = TransparencyLog.verify(entries, trusted: [Self.log.publicKey])
        #expect(!report.valid)
        #expect(report.problems.map(\.seq) == [2] && report.problems[0].problem.contains("edited"))
    }

    @Test func aRehashedEntryFailsItsSignatureAndBreaksTheChain() throws {
        // Whoever edits an entry and recomputes its hash, without the key, cannot sign it; and
        // the entry after it still names the old hash.
        var entries = Self.chain(Self.events)
        let forged = TransparencyLog(adminToken: "someone else's token").entry(
            after: TransparencyHead(seq: 0, hash: entries[0].hash), at: entries[1].at, Self.event("takedown", 2, reason: "other"))
        let e = entries[1]
        entries[1] = TransparencyEntry(
            seq: 1, at: e.at, action: forged.action, takedown: forged.takedown, target: forged.target, subject: forged.subject, reason: forged.reason,
            scope: forged.scope, notice: forged.notice, previous: forged.previous, key: e.key, hash: forged.hash, signature: forged.signature)
        let report = TransparencyLog.verify(entries, trusted: [Self.log.publicKey])
        #expect(!report.valid)
        #expect(Set(report.problems.map(\.seq)) == [1, 2], "\(report.problems)")
    }

    @Test func aRemovedOrInsertedEntryIsFound() {
        var removed = Self.chain(Self.events)
        removed.remove(at: 3)
        let report = TransparencyLog.verify(removed, trusted: nil)
        #expect(!report.valid && report.problems.contains { $0.seq == 4 })

        var inserted = Self.chain(Self.events)
        inserted.insert(inserted[1], at: 2)
        #expect(!TransparencyLog.verify(inserted, trusted: nil).valid)
    }

    /// A log cut short at its end, or rewritten whole by the key's holder, has a valid chain of
    /// its own: only a head verified before shows it.
    @Test func aKnownHeadFindsALogCutShortOrRewritten() {
        let entries = Self.chain(Self.events)
        let known = KnownHead(seq: 3, hash: entries[3].hash)
        #expect(TransparencyLog.verify(entries, trusted: nil, known: known).valid, "the log extends the head")
        let cut = Array(entries.prefix(3))
        #expect(TransparencyLog.verify(cut, trusted: nil).valid, "a cut log's own chain holds")
        let shortened = TransparencyLog.verify(cut, trusted: nil, known: known)
        #expect(!shortened.valid && shortened.problems.map(\.seq) == [3] && shortened.problems[0].problem.contains("cut short"))
        var events = Self.events
        events[2] = Self.event("appeal", 9)
        let rewritten = Self.chain(events)
        #expect(TransparencyLog.verify(rewritten, trusted: [Self.log.publicKey]).valid, "rewritten with the key: a valid chain")
        let caught = TransparencyLog.verify(rewritten, trusted: [Self.log.publicKey], known: known)
        #expect(!caught.valid && caught.problems.map(\.seq) == [3] && caught.problems[0].problem.contains("rewritten"))
        #expect(KnownHead("3:" + entries[3].hash) == known && KnownHead("3:abc") == nil && KnownHead("x:" + entries[3].hash) == nil)
        #expect(TransparencyLog.verify(entries, trusted: nil).headSeq == 4)
    }

    @Test func anotherKeyIsNotTrusted() {
        let other = TransparencyLog(adminToken: "another cluster's admin token")
        let entries = Self.chain(Self.events, log: other)
        #expect(TransparencyLog.verify(entries, trusted: nil).valid)
        let report = TransparencyLog.verify(entries, trusted: [Self.log.publicKey])
        #expect(!report.valid && report.problems.count == 5 && report.problems.allSatisfy { $0.problem.contains("not trusted") })
    }

    @Test func aKeyFileHoldsASeedOfItsOwn() throws {
        let text = TransparencyLog.newKeyFile()
        let log = try TransparencyLog(seed: TransparencyLog.seed(keyFile: text + "\n"))
        #expect(log.publicKey == (try TransparencyLog(seed: TransparencyLog.seed(keyFile: " " + text))).publicKey)
        let other = try TransparencyLog(seed: TransparencyLog.seed(keyFile: TransparencyLog.newKeyFile()))
        #expect(log.publicKey != other.publicKey)
        let entries = Self.chain(Self.events, log: log)
        #expect(TransparencyLog.verify(entries, trusted: [log.publicKey]).valid)
        #expect(throws: ModelError.self) { try TransparencyLog.seed(keyFile: "too short") }
        #expect(throws: ModelError.self) { try TransparencyLog(seed: [1, 2, 3]) }
    }

    @Test func theKeyFollowsTheAdminToken() {
        #expect(TransparencyLog(adminToken: "token one, long enough").publicKey == TransparencyLog(adminToken: "token one, long enough").publicKey)
        #expect(TransparencyLog(adminToken: "token one, long enough").publicKey != TransparencyLog(adminToken: "token two, long enough").publicKey)
        #expect(Base64URL.decode(Self.log.publicKey)?.count == 32)
    }

    @Test func canonicalBytesAreLengthPrefixedFieldsInOrder() {
        let event = TransparencyEvent(action: "a", takedown: "", target: "link", subject: "", reason: "other", scope: "global", notice: "n")
        let bytes = TransparencyLog.canonical(seq: 7, at: 12, event: event, previous: "p", key: "k")
        var expected: [UInt8] = []
        for field in ["coffre-transparency-v1", "7", "12", "a", "", "link", "", "other", "global", "n", "p", "k"] {
            expected += [0, 0, 0, UInt8(field.utf8.count)] + Array(field.utf8)
        }
        #expect(bytes == expected)
    }
}
