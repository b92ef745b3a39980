import ArgumentParser
import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation

/// The options of a drill command: those of every command but `--coordinator`, which names
/// the coordinator to drill here.
struct DrillOptions: ParsableArguments {
    @Option(help: "Profile name (in $COFFRE_HOME/profiles, default ~/.coffre) or path.") var profile: String = "dev"
    @Option(help: "Use only this country's coordinator (ISO code).") var via: String?
    @Flag(help: "Print JSON instead of text.") var json = false

    var global: GlobalOptions {
        get throws { try GlobalOptions.parse(["--profile", profile] + (via.map { ["--via", $0] } ?? []) + (json ? ["--json"] : [])) }
    }
}

/// `8+4`: k and m.
func parseScheme(_ text: String) throws -> (Int, Int) {
    let parts = text.split(separator: "+")
    guard parts.count == 2, let k = Int(parts[0]), let m = Int(parts[1]) else { throw ValidationError("\(text) is not a scheme K+M (e.g. 8+4)") }
    return (k, m)
}

/// `90`, `90s`, `5m`, `1h`: seconds.
func parseDuration(_ text: String) throws -> Int {
    let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600]
    var digits = text
    var unit = 1
    if let last = text.last, let scale = units[last] {
        unit = scale
        digits.removeLast()
    }
    guard let value = Int(digits), value > 0 else { throw ValidationError("\(text) is not a duration (90, 90s, 5m, 1h)") }
    return value * unit
}

extension Admin {
    struct Drill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Failover drills: take nodes, a country or a coordinator out on purpose (stop, blackhole, slow), watch the cluster cope, read the report.",
            subcommands: [Preflight.self, Start.self, DrillStatus.self, Stop.self, Report.self], defaultSubcommand: DrillStatus.self)

        struct Preflight: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "What a drill taking these nodes or countries away would leave: the fewest healthy shards of any segment, and the segments under k + margin (the drill would be refused). Changes nothing; exits 9 when refused.")
            @OptionGroup var options: GlobalOptions
            @Option(help: "A node the drill would take away (repeatable).") var node: [String] = []
            @Option(help: "A country whose nodes the drill would take away (repeatable).") var country: [String] = []
            @Option(help: "Healthy shards beyond k every segment must keep (default: the policy's margin).") var margin: Int?

            func run() async throws {
                guard !node.isEmpty || !country.isEmpty else { throw ValidationError("name a --node or a --country") }
                var allowed = true
                try await perform {
                    try await using(options) { client in
                        let report = try await client.adminDrillPreflight(nodes: node, countries: country, margin: margin)
                        allowed = report.allowed
                        if options.json { printJSON(report) } else {
                            print("fault: \(report.fault.joined(separator: ", "))")
                            print("lowest healthy shards of a segment during the drill: \(report.lowestHealthy.map(String.init) ?? "-") (k = \(report.dataShards), margin \(report.margin))")
                            if report.allowed {
                                print("allowed: no segment falls under k + margin (\(report.segments) segments checked)")
                            } else {
                                print("refused: \(report.atRiskCount) segments would fall under k + margin, e.g.")
                                for segment in report.atRisk.prefix(5) { print("  \(segment.objectId) segment \(segment.segment): \(segment.healthy) healthy") }
                            }
                            if !report.complete { print("(only \(report.objectsScanned) objects read: the check is partial)") }
                        }
                    }
                }
                if !allowed { throw ExitCode(9) }
            }
        }

        struct Start: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Start a drill. The pre-flight check refuses one that would leave a segment under k + margin (exit 9); the leader puts the fault on, aborts it when a real failure elsewhere takes a segment under k + margin, and lifts it at the TTL at the latest.")
            @OptionGroup var options: DrillOptions
            @Option(help: "A storage node to take out (repeatable).") var node: [String] = []
            @Option(help: "A country whose storage nodes to take out (repeatable).") var country: [String] = []
            @Option(help: "A coordinator to take out, by id or country code (repeatable).") var coordinator: [String] = []
            @Option(help: "stop (refuse service), blackhole (hold requests unanswered), slow (latency and loss), or external (no fault put on: you cause the failure, e.g. kill processes, and end it by the TTL or drill stop; Cluster/drills/ does).") var mode: String = "stop"
            @Option(help: "Longest the fault lasts: 90, 90s, 5m, 1h.") var ttl: String = "5m"
            @Option(help: "Healthy shards beyond k every segment must keep (default: the policy's margin).") var margin: Int?
            @Option(help: "slow: milliseconds added to every request.") var latency: Int?
            @Option(help: "slow: percent of requests dropped.") var loss: Int?

            func run() async throws {
                guard let faultMode = FaultMode(rawValue: mode) else { throw ValidationError("--mode must be stop, blackhole, slow or external") }
                guard !node.isEmpty || !country.isEmpty || !coordinator.isEmpty else { throw ValidationError("name a --node, a --country or a --coordinator") }
                let seconds = try parseDuration(ttl)
                let global = try options.global
                try await perform {
                    try await using(global) { client in
                        let record = try await client.adminDrillStart(DrillStartRequest(
                            nodes: node, countries: country, coordinators: coordinator, mode: faultMode, ttlSeconds: seconds, margin: margin,
                            latencyMilliseconds: latency, lossPercent: loss))
                        if options.json { printJSON(record) } else {
                            print("\(record.id): \(record.mode.rawValue) \(record.target.joined(separator: ", ")) for at most \(record.ttlSeconds) s")
                            if !record.nodes.isEmpty { print("nodes: \(record.nodes.joined(separator: ", "))") }
                            if !record.coordinators.isEmpty { print("coordinators: \(record.coordinators.joined(separator: ", "))") }
                            print("coffre admin drill status follows it; drill stop lifts the fault; drill report tells what happened")
                        }
                    }
                }
            }
        }

        struct DrillStatus: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "status", abstract: "The running drill, or the last one: phase and events.")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let record = try await client.adminDrill()
                        if options.json { printJSON(record) } else { print(DrillReport(drill: record, load: nil).text(events: 10)) }
                    }
                }
            }
        }

        struct Stop: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Lift the running drill's fault now; the drill then watches the recovery and ends.")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let record = try await client.adminDrillStop()
                        if options.json { printJSON(record) } else { print("\(record.id): the leader lifts the fault at its next step") }
                    }
                }
            }
        }

        struct Report: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "What the drill did: time to detect, whether repair started, bytes rebuilt, time to full redundancy, placement debt, and with --load the clients' requests, errors and latency before, during and after, and whether every file read back bit-exact. Exits 8 when the verification failed, 1 when the drill has not ended or did not recover.")
            @OptionGroup var options: GlobalOptions
            @Option(help: "The record of a load run during the drill (coffre load --out FILE).") var load: String?

            func run() async throws {
                var failed = false
                try await perform {
                    let loaded = try load.map { path -> LoadRecord in
                        guard let data = FileManager.default.contents(atPath: path) else { throw ClientError(.notFound, "cannot read \(path)") }
                        do { return try JSONDecoder().decode(LoadRecord.self, from: data) } catch {
                            throw ClientError(.invalidArgument, "\(path) is not a load record (coffre load --out): \(error)")
                        }
                    }
                    try await using(options) { client in
                        let report = DrillReport(drill: try await client.adminDrill(), load: loaded)
                        if options.json { printJSON(report) } else { print(report.text(events: 50)) }
                        failed = !report.passed
                        if let verification = report.load, !verification.verificationFailures.isEmpty { throw ExitCode(8) }
                    }
                }
                if failed { throw ExitCode(1) }
            }
        }
    }
}

/// A drill's report: the leader's record, and what a load generator saw during it.
struct DrillReport: Codable {
    struct Load: Codable {
        var windows: [LoadWindow]
        var verified: Int
        var verificationFailures: [String]
    }

    var drill: DrillRecord
    var load: Load?
    /// The drill ended with full redundancy and every file read back bit-exact.
    var passed: Bool

    init(drill: DrillRecord, load: LoadRecord?) {
        self.drill = drill
        self.load = load.map { Load(windows: LoadWindow.split($0, drill: drill), verified: $0.verified, verificationFailures: $0.verificationFailures) }
        passed = drill.phase == .ended && drill.outcome == "recovered" && (self.load?.verificationFailures.isEmpty ?? true)
    }

    func text(events: Int) -> String {
        let d = drill
        func after(_ at: Int64?, from: Int64 = d.startedAt) -> String { at.map { String(format: "%.1f s", Double($0 - from) / 1000) } ?? "-" }
        var lines: [String] = []
        var what = "\(d.id): \(d.mode.rawValue) \(d.target.joined(separator: ", "))"
        if d.mode == .slow { what += " (+\(d.latencyMilliseconds) ms, \(d.lossPercent) % dropped)" }
        lines.append(what + "; TTL \(d.ttlSeconds) s, margin \(d.margin) over k = \(d.dataShards)")
        if !d.nodes.isEmpty { lines.append("nodes: \(d.nodes.joined(separator: ", "))") }
        if !d.coordinators.isEmpty { lines.append("coordinators: \(d.coordinators.joined(separator: ", "))") }
        lines.append("phase: \(d.phase.rawValue)" + (d.outcome.map { " (\($0))" } ?? ""))
        if let lifted = d.liftedAt { lines.append("fault lifted after \(after(lifted)) (\(d.liftReason ?? "-"))" + (d.abortReason.map { ": \($0)" } ?? "")) }
        lines.append("time to detect: " + (d.nodes.isEmpty ? "- (no storage node drilled)" : d.detectedAt == nil ? "not seen down" : after(d.detectedAt)))
        if let started = d.repairStartedAt {
            lines.append("repair: started after \(after(started)) (repair_after \(d.repairAfterSeconds) s)")
        } else {
            lines.append("repair: not started (repair_after \(d.repairAfterSeconds) s" + (d.ttlSeconds < d.repairAfterSeconds ? ", longer than the drill)" : ")"))
        }
        lines.append("rebuilt: \(d.segmentsRebuilt) segments, \(ByteCount(d.bytesRebuilt))" + (d.leaderChanged ? " (across a leader change)" : ""))
        lines.append("time to full redundancy: \(after(d.fullRedundancyAt)); degraded segments now: \(d.degradedSegments) of \(d.segments)")
        lines.append("placement debt: \(d.placementDebtCreated) segments created; in debt at the start \(d.debtSegmentsAtStart), now \(d.debtSegments)")
        lines.append("lowest healthy shards of a segment during the fault: \(d.lowestHealthySeen.map(String.init) ?? "-")")
        if let load {
            lines.append("clients:")
            lines.append("  window   requests  errors   p50 ms   p99 ms")
            for window in load.windows {
                func ms(_ value: Double?) -> String { value.map { String(format: "%8.1f", $0) } ?? "       -" }
                lines.append(
                    "  " + window.name.padding(toLength: 8, withPad: " ", startingAt: 0) + String(format: " %8d %7d ", window.requests, window.errors)
                        + ms(window.p50Milliseconds) + " " + ms(window.p99Milliseconds))
            }
            lines.append(
                load.verificationFailures.isEmpty
                    ? "verification: all \(load.verified) files read back bit-exact"
                    : "VERIFICATION FAILED: \(load.verificationFailures.count) files: \(load.verificationFailures.prefix(5).joined(separator: "; "))")
        }
        lines.append("events:")
        for event in d.events.suffix(events) { lines.append("  +\(after(event.at)): \(event.what)") }
        return lines.joined(separator: "\n")
    }
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate load for a drill or a test: a throwaway account uploads new files and reads back earlier ones, then every file is read back and compared. The record (--out) feeds coffre admin drill report --load.")
    @OptionGroup var options: GlobalOptions
    @Option(help: "How long: 90, 90s, 5m.") var duration: String = "60s"
    @Option(help: "Bytes per file.") var size: Int = 256 << 10
    @Option(help: "Operations in flight at once.") var workers: Int = 2
    @Option(help: "Write the record of every operation here (JSON).") var out: String?

    func run() async throws {
        let seconds = try parseDuration(duration)
        guard (1...(64 << 20)).contains(size) else { throw ValidationError("--size must be 1...67108864 bytes") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1...64") }
        try await perform {
            try await using(options) { client in
                let user = "load\(Int64(Date().timeIntervalSince1970 * 1000))"
                let password = UUID().uuidString
                _ = try await client.register(username: user, password: password, parameters: .minimum)
                let session = try await client.login(username: user, password: password)
                let scratch = NSTemporaryDirectory() + "/coffre-load-\(user)"
                defer { try? FileManager.default.removeItem(atPath: scratch) }
                let generator = LoadGenerator(duration: .seconds(seconds), fileBytes: size, workers: workers, folder: "/load", scratch: scratch)
                let record = try await generator.run(client, session) { elapsed, done, failed in
                    FileHandle.standardError.write(Data("load: \(elapsed) s, \(done) operations, \(failed) errors\n".utf8))
                }
                if let out { FileManager.default.createFile(atPath: out, contents: try JSONEncoder().encode(record)) }
                let all = LoadWindow(name: "all", operations: record.operations)
                if options.json { printJSON(["all": all]) } else {
                    print("\(all.requests) operations, \(all.errors) errors, p50 \(all.p50Milliseconds.map { String(format: "%.1f", $0) } ?? "-") ms, p99 \(all.p99Milliseconds.map { String(format: "%.1f", $0) } ?? "-") ms")
                    print(record.verificationFailures.isEmpty ? "all \(record.verified) files read back bit-exact" : "VERIFICATION FAILED: \(record.verificationFailures.joined(separator: "; "))")
                }
                if !record.verificationFailures.isEmpty { throw ExitCode(8) }
            }
        }
    }
}
