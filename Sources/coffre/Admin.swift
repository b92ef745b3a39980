import ArgumentParser
import ClusterTLS
import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation
import LocalCluster
import Transparency

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Operate a cluster: status, nodes, objects, certificates, the local cluster.",
        subcommands: [
                Status.self, Nodes.self, NodeCommand.self, Object.self, Repair.self, Rebalance.self, Policy.self, Plan.self, Drill.self, Countries.self, Scrub.self, GC.self,
                Takedown.self, Account.self, TransparencyKey.self, Certs.self, ClusterCommand.self,
            ])

    struct TransparencyKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "transparency-key",
            abstract: "Make a signing key file for the transparency log (transparency_key_file) and print its public key.",
            discussion: """
                Give every coordinator the same file (transparency_key_file), then restart them one by one: entries from then on \
                are signed with it, and those before keep the key they were signed with. Verifiers add the new public key \
                ($COFFRE_HOME/transparency/CLUSTER.key, or --key) before they verify. The file is written readable by its owner only.
                """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Where to write the key file (refused when it exists).") var file: String

        func run() async throws {
            try await perform {
                guard !FileManager.default.fileExists(atPath: file) else { throw ClientError(.conflict, "\(file) exists: a key file is never overwritten") }
                let text = TransparencyLog.newKeyFile()
                guard FileManager.default.createFile(atPath: file, contents: Data((text + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                    throw ClientError(.invalidArgument, "cannot write \(file)")
                }
                let publicKey = try TransparencyLog(seed: TransparencyLog.seed(keyFile: text)).publicKey
                if options.json { return printJSON(["file": file, "publicKey": publicKey]) }
                print("wrote \(file); its public key (what verifiers trust): \(publicKey)")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The coordinator's view: metadata, policy, nodes up and down.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await perform {
                try await using(options) { client in
                    let status = try await client.adminStatus()
                    if options.json { printJSON(status) } else {
                        let up = status.nodes.filter(\.up).count
                        print("coordinator \(status.coordinator) (\(status.country)); metadata: \(status.metadata); policy: \(status.policy)")
                        print("nodes: \(up) of \(status.nodes.count) up in \(Set(status.nodes.map(\.country)).count) countries; leader: \(status.leader ?? "none")")
                        for alarm in status.metadataAlarms ?? [] {
                            print("ALARM: metadata store: \(alarm): writes are refused (see Docs/operations.md, \"etcd\")")
                        }
                    }
                }
            }
        }
    }

    struct Nodes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Storage nodes by country and region, with capacity and use.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await perform {
                try await using(options) { client in
                    let nodes = try await client.adminStatus().nodes
                    if options.json { printJSON(nodes) } else {
                        print("NODE      COUNTRY  REGION        STATE  USED / CAPACITY")
                        for node in nodes.sorted(by: { ($0.country, $0.id) < ($1.country, $1.id) }) {
                            print("\(node.id.padding(toLength: 10, withPad: " ", startingAt: 0))\(node.country.padding(toLength: 9, withPad: " ", startingAt: 0))\(node.region.padding(toLength: 14, withPad: " ", startingAt: 0))\((node.up ? "up" : "DOWN").padding(toLength: 7, withPad: " ", startingAt: 0))\(ByteCount(node.usedBytes)) / \(ByteCount(node.capacityBytes))")
                        }
                    }
                }
            }
        }
    }

    struct Object: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Where an object's shards are: per segment, k, m, each shard's node and country.",
            discussion: "Give an object id, or a path in the logged-in account.")
        @OptionGroup var options: GlobalOptions
        @Argument var pathOrId: String

        func run() async throws {
            try await perform {
                try await using(options) { client in
                    var objectId = pathOrId
                    if pathOrId.hasPrefix("/") {
                        let entries = try await client.list(pathOrId, try loadSession(options))
                        guard let id = entries.first?.objectId, entries.count == 1 else { throw ClientError(.invalidArgument, "\(pathOrId) is not a file") }
                        objectId = id
                    }
                    let manifest = try await client.adminObject(objectId)
                    if options.json { printJSON(manifest) } else {
                        print("object \(manifest.id): \(ByteCount(manifest.length)) in \(manifest.segments.count) segments, \(manifest.policy)")
                        if let excluded = manifest.excludedCountries, !excluded.isEmpty {
                            print("excluded by its owner: \(excluded.map(\.code).joined(separator: ", ")) (no shard goes there)")
                        }
                        for segment in manifest.segments {
                            let countries = Dictionary(grouping: segment.shards, by: { String($0.node.value.prefix(2)).uppercased() }).mapValues(\.count)
                            print("  segment \(segment.index): \(ByteCount(segment.length)); shards per country \(countries.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))\(segment.placementDebt ? " (placement debt)" : "")")
                        }
                    }
                }
            }
        }
    }

    struct Repair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Repair: what the leader is rebuilding, and its budget.",
            subcommands: [RepairStatusCommand.self, Budget.self], defaultSubcommand: RepairStatusCommand.self)

        struct RepairStatusCommand: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "status",
                abstract: "The leader, segments queued, bytes done and left, rate, ETA, the most at-risk segment.")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let status = try await client.adminRepairStatus()
                        if options.json { printJSON(status) } else { print(Self.text(status)) }
                    }
                }
            }

            static func text(_ status: RepairStatus) -> String {
                var lines = ["leader: \(status.leader.map { "\($0) (epoch \(status.epoch))" } ?? "none")"]
                lines.append("budget: \(ByteCount(status.budgetBytesPerSecond))/s; rate: \(ByteCount(Int64(status.rateBytesPerSecond)))/s")
                let eta = status.etaSeconds.map { String(format: "%.0f s", $0) } ?? "-"
                lines.append("queued: \(status.queuedSegments) segments, \(ByteCount(status.bytesLeft)) left, ETA \(eta); done: \(ByteCount(status.bytesDone))")
                lines.append("repaired: \(status.segmentsRepaired) segments; failed: \(status.segmentsFailed); unrepairable now: \(status.segmentsUnrepairable); placement debt created: \(status.placementDebtCreated)")
                if let healthy = status.mostAtRiskHealthyShards { lines.append("most at risk: a segment with \(healthy) healthy shards") }
                lines.append("nodes down: \(status.downNodes.isEmpty ? "none" : status.downNodes.joined(separator: ", ")); lost (being rebuilt elsewhere): \(status.lostNodes.isEmpty ? "none" : status.lostNodes.joined(separator: ", "))")
                if !status.replacedNodes.isEmpty {
                    lines.append("nodes back with another store (old shards rebuilt elsewhere): \(status.replacedNodes.joined(separator: ", "))")
                }
                if let error = status.lastError { lines.append("last error: \(error)") }
                return lines.joined(separator: "\n")
            }
        }

        struct Budget: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Set repair's budget for the whole cluster, at once (0 pauses repair).",
                discussion: "Example: coffre admin repair budget 300MB/s")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "Bytes per second: 300MB/s, 1GiB/s, 0.") var rate: String

            func run() async throws {
                try await perform {
                    let bytes = try ByteCount(parsing: rate).bytes
                    try await using(options) { client in
                        try await client.adminSetRepairBudget(bytesPerSecond: bytes)
                        if options.json { printJSON(RepairBudgetRequest(bytesPerSecond: bytes)) } else {
                            print(bytes == 0 ? "repair paused" : "repair budget: \(ByteCount(bytes))/s")
                        }
                    }
                }
            }
        }
    }

    struct Countries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each country's state (up, down, quarantined, evacuated), since when, its nodes and its segments at risk.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await perform {
                try await using(options) { client in
                    let list = try await client.adminCountries()
                    if options.json { return printJSON(list) }
                    print("COUNTRY  STATE        SINCE                 NODES UP/DOWN  SEGMENTS AT RISK")
                    let format = ISO8601DateFormatter()
                    for country in list.countries {
                        let since = country.since > 0 ? format.string(from: Date(timeIntervalSince1970: Double(country.since) / 1000)) : "-"
                        print(
                            country.country.padding(toLength: 9, withPad: " ", startingAt: 0) + country.state.padding(toLength: 13, withPad: " ", startingAt: 0)
                                + since.padding(toLength: 22, withPad: " ", startingAt: 0) + "\(country.nodesUp)/\(country.nodesDown)".padding(toLength: 15, withPad: " ", startingAt: 0)
                                + "\(country.segmentsAtRisk)")
                    }
                    if list.leader == nil { print("(no leader: states are this coordinator's own view)") }
                }
            }
        }
    }

    struct Scrub: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Scrub: nodes re-read their shards against their checksums; what is corrupt is rebuilt by repair.",
            discussion: """
                coffre admin scrub --node ID          the leader's schedule takes this node next
                coffre admin scrub --node ID --wait   one whole pass now; prints what it found
                coffre admin scrub                    the schedule's counters
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The node to scrub.") var node: String?
        @Flag(help: "Run the pass now and wait for its findings.") var wait = false

        func run() async throws {
            try await perform {
                try await using(options) { client in
                    guard let node else {
                        let status = try await client.adminScrubStatus()
                        if options.json { return printJSON(status) }
                        print("leader: \(status.leader ?? "none"); now at: \(status.currentNode ?? "-"); passes: \(status.passesCompleted)")
                        print("scanned: \(status.shardsScanned) shards, \(ByteCount(status.bytesVerified)); corrupt: \(status.corruptFound); queued for repair: \(status.suspectsRecorded)")
                        if let error = status.lastError { print("last error: \(error)") }
                        return
                    }
                    let report = try await client.adminScrub(node: node, wait: wait)
                    if options.json { return printJSON(report) }
                    guard wait else { return print("node \(node) is next in the leader's scrub schedule") }
                    print("node \(node): \(report.shardsScanned) shards, \(ByteCount(report.bytesVerified)) verified; \(report.corrupt.count) corrupt, \(report.suspectsRecorded) queued for repair")
                    for finding in report.corrupt { print("  \(finding.key): \(finding.reason)") }
                }
            }
        }
    }

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What-if: what draining a node, removing or adding a country, or changing the erasure scheme would do, and whether the policy can still be met. Changes nothing.",
            subcommands: [PlanDrain.self, PlanRemoveCountry.self, PlanAddCountry.self, PlanPolicy.self])

        struct PlanAddCountry: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "add-country", abstract: "What adding a country of N empty nodes would move to even out utilisation (a started rebalance would do it).")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "Country code.") var country: String
            @Argument(help: "How many nodes.") var nodes: Int
            @Option(help: "Bytes per node (default: the median of the members').") var capacity: Int64?
            @Option(help: "Utilisation spread left alone, as a fraction of capacity (0.01...1).") var spread: Double = 0.05

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let report = try await client.adminRebalancePlan(spread: spread, addCountry: (country, nodes, capacity))
                        if options.json { printJSON(report) } else { print(Rebalance.RebalancePlanCommand.text(report)) }
                    }
                }
            }
        }

        struct PlanPolicy: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "policy", abstract: "What changing the erasure scheme to K+M would do: segments re-encoded, bytes read and written, storage before and after, time at the budget.")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "The scheme, as K+M (e.g. 8+4).") var scheme: String

            func run() async throws {
                let (k, m) = try parseScheme(scheme)
                try await perform {
                    try await using(options) { client in
                        let report = try await client.adminPolicyPlan(k: k, m: m)
                        if options.json { printJSON(report) } else {
                            print("\(report.current) -> \(report.target): \(report.segmentsToReencode) segments of \(report.objects) objects to re-encode")
                            print("read \(ByteCount(report.bytesToRead)), write \(ByteCount(report.bytesToWrite)); stored \(ByteCount(report.storedBytesNow)) now, \(ByteCount(report.storedBytesAfter)) after")
                            if let seconds = report.estimatedSeconds { print(String(format: "about %.0f s at the budget of %@/s", seconds, ByteCount(report.budgetBytesPerSecond).description)) }
                            print("lowest healthy shards of a segment: \(report.lowestHealthy.map(String.init) ?? "-") (old shards stay until each segment's swap)")
                            print(report.policyCanBeMet ? "the nodes up can hold it within the country rule" : "the nodes up CANNOT hold it within the country rule")
                            if !report.complete { print("(only \(report.objectsScanned) objects read: partial)") }
                        }
                    }
                }
            }
        }

        struct PlanDrain: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "drain", abstract: "What draining these nodes would move.")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "Node ids.") var nodes: [String]

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let report = try await client.adminRebalancePlan(drain: nodes)
                        if options.json { printJSON(report) } else { print(Rebalance.RebalancePlanCommand.text(report)) }
                    }
                }
            }
        }

        struct PlanRemoveCountry: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "remove-country", abstract: "What removing these countries' nodes would move.")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "Country codes.") var countries: [String]

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let report = try await client.adminRebalancePlan(removeCountries: countries)
                        if options.json { printJSON(report) } else { print(Rebalance.RebalancePlanCommand.text(report)) }
                    }
                }
            }
        }
    }

    struct Policy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The erasure scheme: which one new objects get, segments by scheme, and changing it online (the leader re-encodes existing segments as a job; reads and writes go on).",
            subcommands: [PolicyStatusCommand.self, SetPolicy.self, Cancel.self], defaultSubcommand: PolicyStatusCommand.self)

        struct PolicyStatusCommand: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "status", abstract: "The scheme, segments by scheme, the re-encoding job.")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let status = try await client.adminPolicy()
                        if options.json { printJSON(status) } else {
                            print("new objects: \(status.policy ?? "-"); segments: " + (status.segmentsByScheme ?? [:]).sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
                            if let job = status.job {
                                print("re-encoding to RS(\(job.k),\(job.m)): pass \(job.pass), \(job.foundThisPass) objects found in this pass")
                            } else if let finished = status.lastJobFinishedAt {
                                print("last re-encoding finished \(Date(timeIntervalSince1970: Double(finished) / 1000))")
                            }
                            print("leader \(status.leader ?? "none"): \(status.objectsReencoded) objects, \(status.segmentsReencoded) segments re-encoded, \(ByteCount(status.bytesWritten)) written, \(status.refused) refused, \(status.failed) failed" + (status.lastError.map { "; last error: \($0)" } ?? ""))
                        }
                    }
                }
            }
        }

        struct SetPolicy: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "set", abstract: "Write new objects as K+M from now on and re-encode the others (refused when the nodes cannot hold K+M shards within the country rule: exit 7; while a re-encoding runs: exit 5).")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "The scheme, as K+M (e.g. 8+4).") var scheme: String

            func run() async throws {
                let (k, m) = try parseScheme(scheme)
                try await perform {
                    try await using(options) { client in
                        let job = try await client.adminSetPolicy(k: k, m: m)
                        if options.json { printJSON(job) } else { print("new objects are RS(\(job.k),\(job.m)); re-encoding the others (coffre admin policy status)") }
                    }
                }
            }
        }

        struct Cancel: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Stop the re-encoding after the object in hand; the scheme stays set, segments keep the scheme they have.")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let job = try await client.adminPolicyCancel()
                        if options.json { printJSON(job) } else { print("re-encoding to RS(\(job.k),\(job.m)) cancelled in pass \(job.pass)") }
                    }
                }
            }
        }
    }

    struct NodeCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "node", abstract: "One storage node: drain it before it leaves, cancel a drain, remove it once empty.",
            subcommands: [Drain.self, Undrain.self, Remove.self])

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Remove a node from the cluster once nothing is placed on it (after coffre admin node drain, or once repair rebuilt a dead node's shards); exit 5 while shards are left. Its id cannot announce itself again.")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "The node's id.") var node: String

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let removal = try await client.adminRemoveNode(node)
                        if options.json { printJSON(removal) } else { print("\(removal.node): removed; stop its process and reclaim its disk") }
                    }
                }
            }
        }

        struct Drain: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Empty a node: nothing new is placed there and the leader moves its shards to others, paced by the repair budget.")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "The node's id.") var node: String

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let drain = try await client.adminDrain(node: node, drain: true)
                        if options.json { printJSON(drain) } else {
                            print("\(drain.node): draining; \(drain.objectsLeft) objects have a shard there (coffre admin rebalance status)")
                        }
                    }
                }
            }
        }

        struct Undrain: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Cancel a drain: moves stop between two objects; shards already moved stay where they are.")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "The node's id.") var node: String

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let drain = try await client.adminDrain(node: node, drain: false)
                        if options.json { printJSON(drain) } else { print("\(drain.node): not draining") }
                    }
                }
            }
        }
    }

    struct Rebalance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebalancing: drains, a started rebalance (placement debt, skew), the moves the leader made; a dry run of what it would do. (Erasure-scheme changes: coffre admin policy.)",
            subcommands: [RebalanceStatusCommand.self, RebalancePlanCommand.self, Start.self, Cancel.self], defaultSubcommand: RebalanceStatusCommand.self)

        struct Start: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Start a rebalance: the leader pays placement debt back and evens utilisation, in passes over every object, paced by the repair budget, until a pass moves nothing.")
            @OptionGroup var options: GlobalOptions
            @Option(help: "Utilisation spread left alone, as a fraction of capacity (0.01...1).") var spread: Double = 0.05

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let job = try await client.adminRebalanceStart(spread: spread)
                        if options.json { printJSON(job) } else { print("rebalance started (spread \(job.spread)); coffre admin rebalance status") }
                    }
                }
            }
        }

        struct Cancel: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Stop the running rebalance after the moves in hand; what moved stays moved.")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let job = try await client.adminRebalanceCancel()
                        if options.json { printJSON(job) } else { print("rebalance cancelled in pass \(job.pass)") }
                    }
                }
            }
        }

        struct RebalancePlanCommand: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "plan",
                abstract: "A dry run: the moves rebalancing would make now (drains, placement debt, skew), bytes per country pair, the lowest margin, the time at the budget. Changes nothing.")
            @OptionGroup var options: GlobalOptions
            @Option(name: .customLong("drain"), help: "Also treat this node as drained (repeatable).") var drain: [String] = []
            @Option(name: .customLong("remove-country"), help: "Also treat this country's nodes as drained (repeatable).") var removeCountry: [String] = []
            @Option(help: "Utilisation spread left alone, as a fraction of capacity (0.01...1).") var spread: Double = 0.05

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let report = try await client.adminRebalancePlan(drain: drain, removeCountries: removeCountry, spread: spread)
                        if options.json { printJSON(report) } else { print(Self.text(report)) }
                    }
                }
            }

            static func text(_ report: RebalancePlanReport) -> String {
                var lines: [String] = []
                lines.append("treated as drained: \(report.draining.isEmpty ? "none" : report.draining.joined(separator: ", "))")
                if let added = report.added { lines.append("added (empty, up): \(added.joined(separator: ", "))") }
                let reasons = report.movesByReason.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                lines.append("moves: \(report.moves)\(reasons.isEmpty ? "" : " (\(reasons))"), \(ByteCount(report.bytes))")
                let eta = report.estimatedSeconds.map { String(format: "%.0f s", $0) } ?? "-"
                lines.append("at the budget of \(ByteCount(report.budgetBytesPerSecond))/s: \(eta)")
                if let lowest = report.lowestHealthyDuringMoves { lines.append("lowest healthy shards of a moving segment: \(lowest)") }
                for (pair, bytes) in report.bytesByCountryPair.sorted(by: { $0.key < $1.key }) {
                    lines.append("  \(pair.replacingOccurrences(of: ">", with: " -> ")): \(ByteCount(bytes))")
                }
                if report.segmentsSkipped > 0 { lines.append("segments left alone: \(report.segmentsSkipped) (\(report.skipped.prefix(3).joined(separator: "; ")))") }
                if !report.policyCanBeMet { lines.append("the nodes left cannot hold a segment within the country rule: moves leave placement debt") }
                lines.append("objects read: \(report.objectsScanned)\(report.complete ? "" : " (not all: the figures are partial)")")
                return lines.joined(separator: "\n")
            }
        }

        struct RebalanceStatusCommand: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "status", abstract: "Nodes being drained, objects left on each, moves and bytes done, rate.")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let status = try await client.adminRebalanceStatus()
                        if options.json { printJSON(status) } else {
                            print("leader: \(status.leader.map { "\($0) (epoch \(status.epoch))" } ?? "none")")
                            for drain in status.draining {
                                print("draining \(drain.node): \(drain.objectsLeft == 0 ? "empty, can be removed" : "\(drain.objectsLeft) objects left")")
                            }
                            if status.draining.isEmpty { print("draining: none") }
                            if let job = status.job {
                                print("rebalance: pass \(job.pass), \(job.movesThisPass) moves in it so far, at \(job.cursor.map { String($0.dropFirst(8)) } ?? "the start")")
                            } else {
                                print("rebalance: not running\(status.lastJobFinishedAt.map { _ in " (the last one finished: a pass moved nothing)" } ?? "")")
                            }
                            print("moved: \(status.movesDone) shards, \(ByteCount(status.bytesMoved)); rate \(ByteCount(Int64(status.rateBytesPerSecond)))/s; refused: \(status.movesRefused); failed: \(status.movesFailed); segments skipped: \(status.segmentsSkipped)")
                            if let error = status.lastError { print("last error: \(error)") }
                        }
                    }
                }
            }
        }
    }

    struct GC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Garbage collection: unreferenced shards scanned, deleted and bytes reclaimed by the leader.",
            subcommands: [GCStatus.self], defaultSubcommand: GCStatus.self)

        struct GCStatus: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "status", abstract: "The collector's counters and where it is.")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                try await perform {
                    try await using(options) { client in
                        let status = try await client.adminCollectorStatus()
                        if options.json { printJSON(status) } else {
                            print("leader: \(status.leader.map { "\($0) (epoch \(status.epoch))" } ?? "none"); grace: \(status.graceSeconds) s")
                            print("scanned: \(status.shardsScanned) shards in \(status.passesCompleted) full passes; now at: \(status.currentNode ?? "-")")
                            print("deleted: \(status.shardsDeleted) shards, \(ByteCount(status.bytesReclaimed)) reclaimed; refused (written again meanwhile): \(status.deletesRefused)")
                            if let error = status.lastError { print("last error: \(error)") }
                            if let bin = status.binPurge {
                                print("rubbish bin purge: \(bin.entries) entries (\(bin.nodes) files and folders, \(ByteCount(bin.bytes))) purged in \(bin.passes) passes; retention \(bin.retentionSeconds) s; failures \(bin.failures)\(bin.lastError.map { " (last: \($0))" } ?? "")")
                            }
                        }
                    }
                }
            }
        }
    }

    struct Certs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The cluster CA and certificates by role: create, issue, list, rotate the CA.",
            discussion: """
                Creates a CA in FOLDER if it has none. A certificate issued as ROLE/ID (coordinator/coordinator-fr, node/fr-1) names \
                its holder (coffre://ROLE/ID): storage nodes serve coordinators only, and a node announces only itself. \
                Rotation (Docs/operations.md, "Certificates"): --rotate makes a new CA and ca-bundle.pem (new and previous); \
                give every daemon the bundle as its cluster_ca, reissue and restart them one by one, then give them ca.pem alone.
                Examples:
                  coffre admin certs ./certs --issue coordinator/coordinator-fr=fr.coffre.example,127.0.0.1 --issue node/fr-1=10.0.1.5
                  coffre admin certs ./certs --list --json
                  coffre admin certs ./certs --rotate
                """)
        @Argument(help: "Folder for ca.pem, ca-key.pem and the issued NAME.pem / NAME-key.pem.") var folder: String
        @Option(help: "ROLE/ID=HOST[,HOST...] (file ROLE-ID.pem, or ID.pem when ID starts with ROLE), or NAME=HOST[,HOST...] for a certificate naming no role (repeatable).")
        var issue: [String] = []
        @Option(help: "Days an issued certificate is valid.") var days: Int = 397
        @Flag(help: "Start a CA rotation: a new ca.pem, the old as ca-previous.pem, both in ca-bundle.pem.") var rotate = false
        @Flag(help: "End a CA rotation: remove ca-previous.pem and ca-bundle.pem (refused while a certificate here is signed by the previous CA).")
        var finishRotation = false
        @Flag(help: "List the folder's certificates: role, signer, days left.") var list = false
        @Flag(help: "Print the list as JSON.") var json = false

        func run() async throws {
            try await perform {
                var authority: CertificateAuthority
                if FileManager.default.fileExists(atPath: folder + "/ca.pem") {
                    authority = try CertificateAuthority.load(from: folder)
                } else {
                    authority = try CertificateAuthority.create()
                    try authority.write(to: folder)
                    print("created \(folder)/ca.pem and ca-key.pem (keep the key offline)")
                }
                if finishRotation {
                    try CertificateAuthority.finishRotation(in: folder, now: Date())
                    print("rotation finished: ca-previous.pem and ca-bundle.pem removed; daemons trust ca.pem alone")
                }
                if rotate {
                    authority = try CertificateAuthority.rotate(in: folder)
                    print("new CA: \(folder)/ca.pem; previous: ca-previous.pem; trust ca-bundle.pem everywhere until every certificate is reissued")
                }
                guard (1...3650).contains(days) else { throw ClientError(.invalidArgument, "--days must be 1...3650") }
                for item in issue {
                    let (name, identity, hosts) = try Self.parse(item)
                    try authority.issue(commonName: "coffre \(name)", hosts: hosts, identity: identity, days: days).write(to: folder, name: name)
                    print("issued \(folder)/\(name).pem" + (identity.map { " naming \($0)" } ?? " (naming no role: nodes refuse it)"))
                }
                if list {
                    let summaries = try CertificateSummary.list(folder: folder, now: Date())
                    if json { printJSON(summaries) } else {
                        for s in summaries {
                            let role = s.isAuthority ? "CA" : (s.identity ?? "no role")
                            print("\(s.name): \(role), signed by the \(s.signedBy) CA, \(s.daysLeft) days left")
                        }
                    }
                }
            }
        }

        /// `ROLE/ID=HOSTS` or `NAME=HOSTS`: the file name, the identity, the hosts.
        static func parse(_ item: String) throws -> (String, ClusterIdentity?, [String]) {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ClientError(.invalidArgument, "--issue takes ROLE/ID=HOST[,HOST...] or NAME=HOST[,HOST...]") }
            let hosts = parts[1].split(separator: ",").map(String.init)
            guard parts[0].contains("/") else { return (parts[0], nil, hosts) }
            guard let identity = ClusterIdentity(uri: "coffre://" + parts[0]) else {
                throw ClientError(.invalidArgument, "\(parts[0]): ROLE is coordinator or node, and ID is not empty")
            }
            let name = identity.id.hasPrefix(identity.role.rawValue) ? identity.id : "\(identity.role.rawValue)-\(identity.id)"
            return (name, identity, hosts)
        }
    }

    struct ClusterCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cluster", abstract: "The local multi-region cluster (what Cluster/up, down and status run).",
            subcommands: [Up.self, Down.self, ClusterStatus.self, Stop.self, Start.self, AddNode.self])

        struct AddNode: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "add-node",
                abstract: "Start a new storage node in the running local cluster: it gets a certificate naming it and announces itself; nothing else restarts.",
                discussion: "Example: coffre admin cluster add-node --node fr-4 --country FR --region fr-paris --capacity 20GiB")
            @OptionGroup var place: Where
            @Option(help: "The new node's id.") var node: String
            @Option(help: "Its country (ISO 3166 alpha-2).") var country: String
            @Option(help: "Its region.") var region: String
            @Option(help: "Bytes it offers: 20GiB, 500GB.") var capacity: String = "20GiB"

            func run() async throws {
                try await perform {
                    let bytes = try ByteCount(parsing: capacity).bytes
                    try await place.cluster().addNode(id: node, country: country, region: region, capacityBytes: bytes)
                    print("node \(node) started; it announces itself to every coordinator (coffre admin nodes shows it within seconds)")
                }
            }
        }

        struct Selection: ParsableArguments {
            @Option(help: "A storage node, by id (fr-1).") var node: String?
            @Option(help: "A whole country: its coordinator, etcd member and nodes (FR).") var country: String?
            @Option(help: "A country's coordinator (FR).") var coordinator: String?

            func part() throws -> LocalCluster.Part {
                switch (node, country, coordinator) {
                case (let node?, nil, nil): .node(node)
                case (nil, let country?, nil): .country(country)
                case (nil, nil, let coordinator?): .coordinator(coordinator)
                default: throw ClientError(.invalidArgument, "give exactly one of --node, --country, --coordinator")
                }
            }
        }

        struct Stop: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Stop part of the local cluster (it keeps its data and address; start brings it back).",
                discussion: "Examples: coffre admin cluster stop --node fr-1 --kill; coffre admin cluster stop --country FR")
            @OptionGroup var place: Where
            @OptionGroup var selection: Selection
            @Flag(help: "SIGKILL instead of SIGTERM (a crash, not a shutdown).") var kill = false

            func run() async throws {
                try await perform {
                    let cluster = try place.cluster()
                    let stopped = try cluster.stop(try cluster.names(try selection.part()), kill: kill)
                    print(stopped.isEmpty ? "nothing was running" : "stopped (\(kill ? "SIGKILL" : "SIGTERM")): \(stopped.joined(separator: ", "))")
                }
            }
        }

        struct Start: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Start stopped parts of the local cluster again, at the same addresses.",
                discussion: "Example: coffre admin cluster start --country FR")
            @OptionGroup var place: Where
            @OptionGroup var selection: Selection

            func run() async throws {
                try await perform {
                    let cluster = try place.cluster()
                    let started = try await cluster.start(try cluster.names(try selection.part()))
                    print(started.isEmpty ? "everything was running" : "started: \(started.joined(separator: ", "))")
                }
            }
        }

        struct Where: ParsableArguments {
            @Option(help: "Topology YAML.") var topology: String = "Cluster/topologies/dev.yaml"
            @Option(help: "Run folder.") var run: String = "Cluster/run"
            @Option(help: "Folder holding coffred.") var bin: String = ".build/release"
            @Option(name: .customLong("cluster"), help: "A running cluster's own folder (<run>/<name>, where up wrote its topology), instead of --topology and --run.")
            var clusterFolder: String?

            func cluster() throws -> LocalCluster {
                if let clusterFolder { return try LocalCluster(folder: clusterFolder, binaries: bin) }
                return LocalCluster(topology: try ClusterTopologyFile.load(topology), runDirectory: run, binaries: bin)
            }
        }

        struct Up: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Start etcd, storage nodes and coordinators; write the client profile.")
            @OptionGroup var place: Where

            func run() async throws {
                try await perform {
                    let cluster = try place.cluster()
                    let profile = try await cluster.up { print("• \($0)") }
                    print("cluster \(profile.name) is up: \(profile.coordinators.map { "\($0.country) \($0.url)" }.joined(separator: ", "))")
                    print("profile written: \(Profile.home)/profiles/\(profile.name).json (use coffre --profile \(profile.name))")
                }
            }
        }

        struct Down: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Stop exactly the processes up started.")
            @OptionGroup var place: Where

            func run() async throws {
                try await perform {
                    print("stopped \(try place.cluster().down()) processes")
                }
            }
        }

        struct ClusterStatus: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "status", abstract: "Each process of the local cluster and whether it runs.")
            @OptionGroup var place: Where

            func run() async throws {
                try await perform {
                    for process in try place.cluster().processes() {
                        print("\(process.name.padding(toLength: 18, withPad: " ", startingAt: 0)) pid \(process.pid)  \(process.running ? "running" : "stopped")")
                    }
                }
            }
        }
    }
}
