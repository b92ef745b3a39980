import ArgumentParser
import Foundation

/// `coffre-bench`: Coffre's benchmarks, each against a raw baseline measured in the same run.
///
/// Prints one JSON object per line:
/// `{"name": ..., "value": ..., "unit": ..., "baseline": ..., "ratio": value / baseline}`.
/// Run release builds only: `swift run -c release coffre-bench core`.
@main
struct CoffreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffre-bench",
        abstract: "Coffre benchmarks: each figure next to a raw baseline from the same run.",
        subcommands: [Core.self, Cluster.self])
}

struct Core: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reed-Solomon codec, file format and shard store against raw ISA-L, AES-GCM and files.")

    @Option(help: "Only benchmarks whose name starts with this prefix.")
    var only: String = ""

    @Option(help: "Rounds per benchmark; the median is reported.")
    var rounds: Int = 5

    @Option(help: "Folder for the shard store benchmark (default: a temporary folder).")
    var directory: String?

    @Flag(help: "Smaller inputs, for a quick check that everything runs.")
    var quick = false

    func run() throws {
        #if DEBUG
        FileHandle.standardError.write(Data("warning: debug build; use `swift run -c release coffre-bench core`\n".utf8))
        #endif
        let bench = CoreBenchmarks(rounds: max(1, rounds), quick: quick, filter: only, directory: directory)
        try bench.runAll()
    }
}

struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cluster upload, download and small-file benchmarks (not built yet).")

    func run() throws {
        FileHandle.standardError.write(Data(
            "coffre-bench cluster: not available yet: the cluster (coordinators, nodes) is not built. See Docs/performance.md.\n".utf8))
        throw ExitCode(2)
    }
}
