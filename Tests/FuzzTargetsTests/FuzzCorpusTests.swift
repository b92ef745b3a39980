import CoffreModel
import Foundation
import FuzzTargets
import Testing
import TestSupport

/// The fuzz targets without libFuzzer: the committed corpus (seeds, and every input a fuzzer
/// once found interesting or crashing) replays without a trap, and the seeds still get past
/// the first check of their decoder, so that a fuzzer started from them explores the decoder
/// rather than its front door. `Scripts/fuzz` runs the instrumented fuzzers.
@Suite struct FuzzCorpusTests {
    static let corpus = repositoryRoot + "/Tests/Fuzz/Corpus/"

    @Test(arguments: FuzzTarget.allCases)
    func theCommittedCorpusReplaysWithoutATrap(target: FuzzTarget) throws {
        let folder = Self.corpus + target.rawValue
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(!files.isEmpty, "\(folder) has no inputs")
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: folder + "/" + file))
            target.run(Array(data))
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func everySeedIsAcceptedWhole(target: FuzzTarget) {
        let seeds = target.seeds()
        #expect(!seeds.isEmpty)
        for (i, seed) in seeds.enumerated() { #expect(target.run(seed), "seed \(i) of \(target.rawValue) is refused") }
    }

    /// A few mutations of every seed (a seeded generator; the seed is printed): truncated,
    /// a byte flipped, a byte inserted. Nothing traps; a flipped authenticated byte is refused.
    @Test(arguments: FuzzTarget.allCases)
    func mutatedSeedsNeverTrap(target: FuzzTarget) {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("FuzzCorpusTests.mutatedSeedsNeverTrap(\(target.rawValue)) seed \(seed)")
        var random = SplitMix64(seed: seed)
        for input in target.seeds() where !input.isEmpty {
            for _ in 0..<50 {
                var mutated = input
                let at = Int(random.next() % UInt64(mutated.count))
                switch random.next() % 3 {
                case 0: mutated.removeSubrange(at...)
                case 1: mutated[at] ^= UInt8(1 << (random.next() % 8))
                default: mutated.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
                }
                target.run(mutated)
            }
        }
    }

    @Test func onlyKnownTargetsHaveACorpus() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.corpus)
        #expect(Set(folders) == Set(FuzzTarget.allCases.map(\.rawValue)))
    }
}
