import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation
import LocalCluster
import Testing
import TestSupport

extension RealClusters {
    /// Per-account excluded countries on a real cluster (4 countries of 3 nodes, RS(6,3)): an
    /// account that excludes New Zealand has no shard there; repair of a killed node rebuilds
    /// onto the only node left outside New Zealand; excluding so much that nothing can hold a
    /// file refuses uploads with `insufficient_nodes` before their body, and nothing is stored.
    @Suite(.serialized, .timeLimit(.minutes(6))) struct ExcludedCountriesTests {
        @Test func anAccountsExcludedCountriesHoldNoneOfItsShardsThroughUploadAndRepair() async throws {
            try await withHealingCluster("exclude", via: "DE", user: "uma") { running, de, session, folder in
                let set = try await de.setExcludedCountries(["nz"], session)
                #expect(set.countries == ["NZ"] && set.placeable == true)
                #expect(try await de.whoami(session).excludedCountries == ["NZ"])
                #expect(try await de.adminAccount("uma").excludedCountries == ["NZ"], "the operator sees them")
                var stored = StoredFiles()
                try await stored.upload(de, session, folder: folder, sizes: [3 << 20, 1000], seed: 23, prefix: "kept")
                var manifests = try await stored.manifests(de, session)
                func nodes(_ manifests: [ObjectManifest]) -> [String] { manifests.flatMap { $0.segments.flatMap { $0.shards.map(\.node.value) } } }
                #expect(manifests.allSatisfy { $0.excludedCountries == [try! Country("NZ")] })
                #expect(!nodes(manifests).contains { $0.hasPrefix("nz-") } && !nodes(manifests).isEmpty)

                // Another account's files still go to New Zealand (the exclusion is the owner's).
                let other = try await newAccount(de, "victor")
                var theirs = StoredFiles()
                try await theirs.upload(de, other, folder: folder, sizes: [3 << 20], seed: 29, prefix: "theirs")
                #expect(nodes(try await theirs.manifests(de, other)).contains { $0.hasPrefix("nz-") })

                // Too much excluded: refused before the body, nothing stored, usage unchanged.
                let tight = try await de.setExcludedCountries(["NZ", "CH"], session)
                #expect(tight.placeable == false)
                let used = try await de.whoami(session).usedBytes
                do {
                    _ = try await de.upload(folder + "/kept-0", to: "/refused", session)
                    Issue.record("an upload that cannot be placed was accepted")
                } catch let error as ClientError {
                    #expect(error.code == .insufficientNodes && error.message.contains("CH, NZ"), "\(error)")
                }
                #expect(try await de.whoami(session).usedBytes == used)
                #expect(try await de.list("/", session).map(\.name).sorted() == ["kept-0", "kept-1"])
                for bad in [["USA"], ["F1"], ["UK"], ["XX"], (0..<65).map { _ in "FR" }] {
                    do {
                        _ = try await de.setExcludedCountries(bad, session)
                        Issue.record("\(bad.prefix(2)) was accepted")
                    } catch let error as ClientError {
                        #expect(error.code == .invalidArgument || error.code == .limitExceeded, "\(error)")
                    }
                }
                #expect(try await de.whoami(session).excludedCountries == ["CH", "NZ"], "bad input changed nothing")
                _ = try await de.setExcludedCountries(["NZ"], session)

                // Repair: a node of Germany joins, a node holding shards is killed; the only
                // node outside New Zealand without a shard of each segment is the new one.
                try await running.cluster.addNode(id: "de-4", country: "DE", region: "de-berlin", capacityBytes: 4 << 30)
                try await awaitCondition("de-4 is up", seconds: 30) { try await de.adminStatus().nodes.contains { $0.id == "de-4" && $0.up } }
                let victim = try #require(manifests.first?.segments.first?.shards.first?.node.value)
                try running.cluster.kill9("node \(victim)")
                try await awaitCondition("full redundancy without \(victim)", seconds: 120) {
                    let now = try await stored.manifests(de, session)
                    let up = Set(try await de.adminStatus().nodes.filter(\.up).map(\.id))
                    return fullyRedundant(now, up: up, gone: [victim])
                }
                manifests = try await stored.manifests(de, session)
                #expect(!nodes(manifests).contains { $0.hasPrefix("nz-") }, "repair kept out of New Zealand")
                #expect(nodes(manifests).contains("de-4") && !nodes(manifests).contains(victim))
                try await stored.verify(de, session, folder: folder)
            }
        }
    }
}
