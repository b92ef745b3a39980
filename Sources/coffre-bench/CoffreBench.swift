import ArgumentParser
import Foundation

/// `coffre-bench`: Coffre's benchmarks, each against a raw baseline measured in the same run.
///
/// Prints one JSON object per line:
/// `{"name": ..., "value": ..., "unit": ..., "baseline": ..., "ratio": value / baseline}`.
/// Run release builds only: `swift run -c release coffre-bench core`.
@main
struct CoffreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffre-bench",
        abstract: "Coffre benchmarks: each figure next to a raw baseline from the same run.",
        subcommands: [Core.self, Cluster.self, Repair.self])
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

struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload, download and small files on a local 4-country cluster, against TLS copies and raw etcd.")

    @Option(help: "MiB transferred by the upload and download benchmarks.") var sizeMib: Int = 1024
    @Option(help: "Number of 4 KiB files.") var smallCount: Int = 200
    @Flag(help: "Keep the cluster's run folder.") var keep = false
    @Flag(help: "64 MiB and 50 small files, to check that it runs.") var quick = false

    func run() async throws {
        #if DEBUG
        FileHandle.standardError.write(Data("warning: debug build; use `swift run -c release coffre-bench cluster`\n".utf8))
        #endif
        try await ClusterBenchmarks(sizeMiB: quick ? 64 : sizeMib, smallCount: quick ? 50 : smallCount, keep: keep).run()
    }
}

struct Repair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Kill a node of a local cluster holding data: rebuild rate and time to full redundancy, against reading the same shards.")

    @Option(help: "MiB stored before the node is killed.") var sizeMib: Int = 2048
    @Option(help: "Repair budget, bytes per second.") var budget: Int64 = 1_000_000_000
    @Flag(help: "Keep the cluster's run folder.") var keep = false
    @Flag(help: "256 MiB, to check that it runs.") var quick = false

    func run() async throws {
        #if DEBUG
        FileHandle.standardError.write(Data("warning: debug build; use `swift run -c release coffre-bench repair`\n".utf8))
        #endif
        try await RepairBenchmark(sizeMiB: quick ? 256 : sizeMib, budgetBytesPerSecond: budget, keep: keep).run()
    }
}
