import CoffreModel
import Coordinator
import Testing

/// The metadata schema: these strings are what stored clusters hold, so they never change by
/// accident. Regression: `account` and `link` once called themselves (a search-and-replace
/// had rewritten their bodies), and every coordinator crashed on its first account request.
@Suite struct KeyspaceTests {
    @Test func keysAreTheDocumentedStrings() throws {
        let node = try NodeID("fr-1")
        #expect(Keyspace.account("A") == "accounts/A")
        #expect(Keyspace.username("alice") == "usernames/alice")
        #expect(Keyspace.session(tokenHash: "ab") == "sessions/ab")
        #expect(Keyspace.treeNode("A", "N") == "tree/A/N")
        #expect(Keyspace.child("A", "P", "N") == "children/A/P/N")
        #expect(Keyspace.children("A", "P") == "children/A/P/")
        #expect(Keyspace.name("A", "P", "T") == "names/A/P/T")
        #expect(Keyspace.manifest("O") == "objects/O")
        #expect(Keyspace.placement(node, "O") == "placements/fr-1/O")
        #expect(Keyspace.placements(node) == "placements/fr-1/")
        #expect(Keyspace.takedown("T") == "takedowns/T")
        #expect(Keyspace.takedownOf("A", "T") == "takedownsof/A/T")
        #expect(Keyspace.fileTakedown("A", "N", "T") == "takedownsby/A/N/T" && Keyspace.fileTakedowns("A", "N") == "takedownsby/A/N/")
        #expect(Keyspace.transparencyEntry(42) == "transparency/00000000000000000042")
        #expect(Keyspace.transparencyEntry(9) < Keyspace.transparencyEntry(10), "entries sort as numbers do")
        #expect(Keyspace.transparencyHead == "cluster/transparency-head")
        #expect(Keyspace.link("L") == "links/L")
        #expect(Keyspace.transfer("A", bucket: 7, coordinator: "c-fr") == "transfer/A/00000000000000000007/c-fr")
        #expect(Keyspace.transfers("A") == "transfer/A/")
        #expect(Keyspace.binEntry("A", "N") == "bin/A/N" && Keyspace.bin("A") == "bin/A/")
        #expect(Keyspace.binOrder(42, "A", "N") == "binorder/00000000000000000042/A/N" && Keyspace.binOrderAll == "binorder/")
        #expect(Keyspace.linkByOwner("A", "L") == "linksby/A/L")
        #expect(Keyspace.linksByOwner("A") == "linksby/A/")
        #expect(Keyspace.suspect(node, "O", segment: 2, shard: 7) == "suspects/fr-1/O/2/7")
        #expect(Keyspace.observations("c-fr") == "observations/c-fr")
    }
}
