import ArgumentParser
import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation
import Transparency

// Takedowns, appeals and the transparency log (Docs/policy.md, Docs/cli.md).

extension Admin {
    struct Takedown: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take links and files down on a notice (no key needed), list, show and restore takedowns.",
            subcommands: [Create.self, ListTakedowns.self, Show.self, Restore.self, Verify.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Take a link down (with --file: the linked file and every link to it; --node: a file below a folder link), everywhere or in one country.",
                discussion: "Give the link's URL (its fragment never leaves this machine) or its id. Nothing is deleted; `restore` undoes it.")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "https://HOST/l/ID#KEY, or the link id.") var link: String
            @Option(help: "copyright, illegal or other.") var reason: String
            @Option(help: "The notice's reference (a case number, a URL).") var notice: String
            @Option(help: "global, or country:CC to bind only that country's coordinators.") var scope: String = "global"
            @Flag(help: "Take the linked file itself down, and so every link to it.") var file = false
            @Option(help: "With a folder link: the id of a file below it to take down (as `verify` lists them); implies --file.") var node: String?

            func run() async throws {
                try await perform {
                    guard let reason = TakedownReason(rawValue: reason) else {
                        throw ClientError(.invalidArgument, "--reason is one of \(TakedownReason.allCases.map(\.rawValue).joined(separator: ", ")), got \(reason)")
                    }
                    do throws(ModelError) { _ = try TakedownScope(parsing: scope) } catch { throw ClientError(.invalidArgument, error.message) }
                    let linkId = try CoffreClient.linkId(of: link)
                    let info = try await using(options) { client in
                        try await client.adminCreateTakedown(
                            CreateTakedownRequest(linkId: linkId, reason: reason, notice: notice, scope: scope, file: file || node != nil, nodeId: node))
                    }
                    if options.json { printJSON(info) } else { print(describe(info)) }
                }
            }
        }

        struct ListTakedowns: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "Every takedown, oldest first.")
            @OptionGroup var options: GlobalOptions
            @Flag(help: "Only those in force.") var inForce = false

            func run() async throws {
                try await perform {
                    let all = try await using(options) { try await $0.adminTakedowns() }.filter { !inForce || $0.inForce }
                    if options.json { return printJSON(all) }
                    printTable(all)
                }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "One takedown, with its appeals.")
            @OptionGroup var options: GlobalOptions
            @Argument var id: String

            func run() async throws {
                try await perform {
                    let info = try await using(options) { try await $0.adminTakedown(id) }
                    if options.json { printJSON(info) } else { print(describe(info, appeals: true)) }
                }
            }
        }

        struct Restore: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Serve a taken-down link or file again (the takedown stays on record).")
            @OptionGroup var options: GlobalOptions
            @Argument var id: String
            @Option(help: "Why (a counter-notice accepted, a notice withdrawn).") var note: String?

            func run() async throws {
                try await perform {
                    let info = try await using(options) { try await $0.adminRestoreTakedown(id, note: note) }
                    if options.json { printJSON(info) } else { print(describe(info)) }
                }
            }
        }

        struct Verify: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check a notice's claim on this machine: open the full link (with its key) and show what it holds.",
                discussion: """
                    The client decrypts here, as any holder of the link can; the server still sees only the link id. \
                    A file is read whole and its SHA-256 printed (kept with --out); a folder's first level is listed.
                    """)
            @OptionGroup var options: GlobalOptions
            @Argument(help: "https://HOST/l/ID#KEY") var link: String
            @Option(help: "Keep the decrypted file here (default: read, hashed, deleted).") var out: String?
            @Flag(help: "Read the link password from standard input.") var passwordStdin = false
            @Flag(help: "The link has a password: ask for it.") var linkPassword = false

            func run() async throws {
                try await perform {
                    let client = try options.client(forLink: link)
                    defer { Task { try? await client.shutdown() } }
                    let check = try await withLinkPassword(asked: linkPassword, stdin: passwordStdin) { password in
                        try await LinkCheck.make(client, link, password: password, keep: out)
                    }
                    if options.json { return printJSON(check) }
                    print("link \(check.linkId): \(check.type) \(check.name)")
                    if let size = check.size { print("size: \(ByteCount(Int64(size)))") }
                    if let digest = check.sha256 { print("sha256: \(digest)") }
                    for entry in check.entries ?? [] { print("  \(entry)") }
                    if let out { print("kept in \(out)") }
                }
            }
        }
    }
}

extension Admin {
    struct Account: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show an account, set its storage and transfer quotas, suspend or unsuspend it.",
            subcommands: [Show.self, SetAccount.self, Suspend.self, Unsuspend.self], defaultSubcommand: Show.self)

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "What the operator may know of an account: quotas, use, suspension.")
            @OptionGroup var options: GlobalOptions
            @Argument var user: String

            func run() async throws {
                try await perform {
                    let account = try await using(options) { try await $0.adminAccount(user) }
                    if options.json { printJSON(account) } else { print(describe(account)) }
                }
            }
        }

        struct SetAccount: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "set", abstract: "Set an account's storage quota, its transfer quota, or both.",
                discussion: """
                    The transfer quota counts what the account's files serve (to it, to those it shares with, through its links) \
                    in the coordinators' transfer window (transfer_window_seconds, 30 days by default); 0 serves nothing.
                    """)
            @OptionGroup var options: GlobalOptions
            @Argument var user: String
            @Option(help: "Storage quota, as 50GiB, 1TB or bytes.") var storage: String?
            @Option(help: "Transfer quota per window, as 100GB, 1TiB or bytes.") var transfer: String?

            func run() async throws {
                try await perform {
                    guard storage != nil || transfer != nil else { throw ClientError(.invalidArgument, "give --storage, --transfer or both") }
                    func bytes(_ text: String?, _ option: String) throws -> Int64? {
                        guard let text else { return nil }
                        do throws(ModelError) { return try ByteCount(parsing: text).bytes } catch { throw ClientError(.invalidArgument, "\(option): \(error.message)") }
                    }
                    let quota = try bytes(storage, "--storage")
                    let transferQuota = try bytes(transfer, "--transfer")
                    let account = try await using(options) { try await $0.adminSetAccount(user, quotaBytes: quota, transferQuotaBytes: transferQuota) }
                    if options.json { printJSON(account) } else { print(describe(account)) }
                }
            }
        }

        struct Suspend: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Suspend an account: it can only sign in, read why and appeal; its links and shared folders serve nothing; nothing is deleted.",
                discussion: "The reason is published in the transparency log, with the account id hashed.")
            @OptionGroup var options: GlobalOptions
            @Argument var user: String
            @Option(help: "Why (published: write nothing private).") var reason: String

            func run() async throws {
                try await perform {
                    let account = try await using(options) { try await $0.adminSuspend(user, reason: reason) }
                    if options.json { printJSON(account) } else { print(describe(account)) }
                }
            }
        }

        struct Unsuspend: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Lift an account's suspension (logged in the transparency log).")
            @OptionGroup var options: GlobalOptions
            @Argument var user: String
            @Option(help: "Why (published).") var reason: String

            func run() async throws {
                try await perform {
                    let account = try await using(options) { try await $0.adminSuspend(user, reason: reason, suspend: false) }
                    if options.json { printJSON(account) } else { print(describe(account)) }
                }
            }
        }
    }
}

/// "transfer: 1.2 GB of 1 TB in the last 30 days; the oldest leave at ...".
func describe(_ transfer: TransferUse) -> String {
    let window = transfer.windowSeconds % 86_400 == 0 ? "\(transfer.windowSeconds / 86_400) days" : "\(transfer.windowSeconds) s"
    var line = "transfer: \(ByteCount(transfer.usedBytes)) of \(ByteCount(transfer.quotaBytes)) in the last \(window)"
    if let resets = transfer.resetsAt { line += "; the oldest of it stops counting at \(Date(timeIntervalSince1970: Double(resets) / 1000).ISO8601Format())" }
    return line
}

func describe(_ account: AdminAccount) -> String {
    var lines = [
        "account \(account.username) (\(account.accountId)), created \(Date(timeIntervalSince1970: Double(account.createdAt) / 1000).ISO8601Format())",
        "storage: \(ByteCount(account.usedBytes)) of \(ByteCount(account.quotaBytes)); public keys \(account.keysPublished ? "published" : "not published")",
    ]
    if let transfer = account.transfer { lines.append(describe(transfer)) }
    if let countries = account.excludedCountries { lines.append("excluded countries: " + countries.joined(separator: ", ")) }
    if let suspension = account.suspension {
        lines.append("SUSPENDED since \(Date(timeIntervalSince1970: Double(suspension.at) / 1000).ISO8601Format()): \(suspension.reason)")
    }
    return lines.joined(separator: "\n")
}

/// What `admin takedown verify` found behind a link.
struct LinkCheck: Codable {
    var linkId: String
    var type: String
    var name: String
    var size: UInt64?
    var sha256: String?
    /// A folder's first level: node id and name, folders ending in /.
    var entries: [String]?

    static func make(_ client: CoffreClient, _ link: String, password: String?, keep: String?) async throws -> LinkCheck {
        let linkId = try CoffreClient.linkId(of: link)
        let node = try await client.linkNode(link, password: password)
        guard node.type == "file" else {
            // Each with its node id: what `create --node` names to take one file down.
            let names = try await client.listLink(link, password: password).map { "\($0.id)  " + ($0.type == "folder" ? $0.name + "/" : $0.name) }
                .sorted()
            return LinkCheck(linkId: linkId, type: "folder", name: node.name, size: nil, sha256: nil, entries: names)
        }
        let folder = NSTemporaryDirectory() + "coffre-verify-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = keep ?? folder + "/file"
        try await client.downloadLink(link, to: path, password: password)
        var digest = ContentDigest()
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ClientError(.storageFailure, "cannot read \(path)") }
        defer { try? handle.close() }
        while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty { digest.update(Array(piece)) }
        return LinkCheck(linkId: linkId, type: "file", name: node.name, size: node.size, sha256: digest.finish(), entries: nil)
    }
}

/// `coffre takedowns`: what was taken down of yours, and why.
struct Takedowns: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The takedowns of your links and files, with their notices (appeal with `coffre takedown appeal`).")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await perform {
            let all = try await using(options) { try await $0.takedowns(try loadSession(options)) }
            if options.json { return printJSON(all) }
            if all.isEmpty { return print("no takedowns") }
            printTable(all)
        }
    }
}

/// `coffre takedown appeal ID --message TEXT`.
struct TakedownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "takedown", abstract: "Answer a takedown of yours.", subcommands: [Appeal.self])

    struct Appeal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a counter-notice with a takedown; the operator sees it.")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String
        @Option(help: "Your counter-notice (at most 4000 bytes).") var message: String

        func run() async throws {
            try await perform {
                let info = try await using(options) { try await $0.appealTakedown(id, message: message, try loadSession(options)) }
                if options.json { printJSON(info) } else { print("appeal recorded (\(info.appeals.count) on takedown \(info.notice.id))") }
            }
        }
    }
}

/// `coffre transparency verify|show`.
struct TransparencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transparency", abstract: "The cluster's signed log of takedowns, restores, appeals and suspensions.", subcommands: [VerifyLog.self, Show.self])

    struct VerifyLog: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check the log's chain and signatures, and count takedowns by reason and scope.",
            discussion: """
                The signing key is trusted on first use (kept in $COFFRE_HOME/transparency/CLUSTER.key, one key a line: add a new key \
                there after the admin token changed) unless --key names the keys to trust. \
                The head of a valid log is remembered ($COFFRE_HOME/transparency/CLUSTER.head): a later log that no longer holds it, \
                cut short or rewritten, is invalid even if its own chain holds. --head checks against a head published elsewhere. \
                Exits 8 when any entry was edited, removed, inserted or signed by a key not trusted, or a known head is gone.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "Trust only this key (base64url Ed25519 public key); repeat for several.") var key: [String] = []
        @Option(help: "A head verified before, as SEQ:HASH (the last line of an earlier verify), instead of the remembered one.") var head: String?

        func run() async throws {
            try await perform {
                let (entries, current) = try await using(options) { try await $0.transparencyLog() }
                // Pinned per cluster (the profile's name), not per profile file.
                let pinFile = Profile.home + "/transparency/\(try Profile.load(options.profile).name).key"
                var trusted = Set(key)
                var pinned = false
                if trusted.isEmpty {
                    if let text = try? String(contentsOfFile: pinFile, encoding: .utf8) {
                        trusted = Set(text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
                    } else {
                        trusted = [current]
                        pinned = true
                    }
                }
                let headFile = Profile.home + "/transparency/\(try Profile.load(options.profile).name).head"
                let known: KnownHead?
                if let head {
                    guard let given = KnownHead(head) else { throw ClientError(.invalidArgument, "--head is SEQ:HASH (64 hex digits), got \(head)") }
                    known = given
                } else {
                    known = (try? Data(contentsOf: URL(fileURLWithPath: headFile))).flatMap { try? JSONDecoder().decode(KnownHead.self, from: $0) }
                }
                let report = TransparencyLog.verify(entries, trusted: trusted, known: known)
                if report.valid {
                    try FileManager.default.createDirectory(atPath: Profile.home + "/transparency", withIntermediateDirectories: true)
                    if pinned { try (current + "\n").write(toFile: pinFile, atomically: true, encoding: .utf8) }
                    // Only forward: a head given with --head does not replace a later one kept.
                    if let seq = report.headSeq, let hash = report.head, seq >= (known?.seq ?? -1) {
                        try JSONEncoder().encode(KnownHead(seq: seq, hash: hash)).write(to: URL(fileURLWithPath: headFile), options: .atomic)
                    }
                }
                if options.json {
                    printJSON(report)
                } else {
                    print("\(report.entries) entries; \(report.valid ? "chain and signatures valid" : "INVALID")\(pinned ? " (key \(current) trusted on first use)" : "")")
                    if let seq = report.headSeq, let hash = report.head { print("head: \(seq):\(hash)") }
                    if let known { print("checked against the head verified before: \(known.description)") }
                    print("signed by: " + (report.keys.isEmpty ? "nobody yet" : report.keys.joined(separator: ", ")))
                    print("by action: " + counts(report.byAction))
                    print("takedowns by reason: " + counts(report.byReason))
                    print("takedowns by scope: " + counts(report.byScope))
                    for problem in report.problems { print("entry \(problem.seq): \(problem.problem)") }
                }
                if !report.valid { throw ExitCode(8) }
            }
        }

        func counts(_ values: [String: Int]) -> String {
            values.isEmpty ? "none" : values.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The log's entries, oldest first.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await perform {
                let (entries, _) = try await using(options) { try await $0.transparencyLog() }
                if options.json { return printJSON(entries) }
                for entry in entries {
                    let time = Date(timeIntervalSince1970: Double(entry.at) / 1000).ISO8601Format()
                    print("\(entry.seq)  \(time)  \(entry.action.padding(toLength: 9, withPad: " ", startingAt: 0))  \(entry.target.padding(toLength: 5, withPad: " ", startingAt: 0))  \(entry.reason.padding(toLength: 10, withPad: " ", startingAt: 0))  \(entry.scope.padding(toLength: 11, withPad: " ", startingAt: 0))  \(entry.notice)  \(entry.target == "account" ? "account" : "link")#\(entry.subject.prefix(16))")
                }
            }
        }
    }
}

func describe(_ info: TakedownInfo, appeals: Bool = false) -> String {
    var lines = [
        "takedown \(info.notice.id): \(info.notice.target) of link \(info.linkId) (owner \(info.owner)) \(info.notice.scope.words)",
        "reason: \(info.notice.reason.rawValue); notice: \(info.notice.notice)",
        info.restoredAt.map { "restored at \(Date(timeIntervalSince1970: Double($0) / 1000).ISO8601Format())" + (info.restoreNote.map { ": \($0)" } ?? "") } ?? "in force",
    ]
    if appeals {
        lines.append("appeals: \(info.appeals.count)")
        for appeal in info.appeals { lines.append("  \(Date(timeIntervalSince1970: Double(appeal.at) / 1000).ISO8601Format()): \(appeal.message)") }
    } else if !info.appeals.isEmpty {
        lines.append("appeals: \(info.appeals.count)")
    }
    return lines.joined(separator: "\n")
}

func printTable(_ takedowns: [TakedownInfo]) {
    print("ID                      STATE     TARGET  SCOPE        REASON     APPEALS  NOTICE")
    for info in takedowns {
        let cells = [
            info.notice.id.padding(toLength: 24, withPad: " ", startingAt: 0), (info.inForce ? "in force" : "restored").padding(toLength: 10, withPad: " ", startingAt: 0),
            info.notice.target.padding(toLength: 8, withPad: " ", startingAt: 0), info.notice.scope.description.padding(toLength: 13, withPad: " ", startingAt: 0),
            info.notice.reason.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0), String(info.appeals.count).padding(toLength: 9, withPad: " ", startingAt: 0),
        ]
        print(cells.joined() + info.notice.notice)
    }
}

/// `coffre account exclude-countries`.
struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "account", abstract: "Your account's settings.", subcommands: [ExcludeCountries.self])

    struct ExcludeCountries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Countries none of your new files goes to (repair and rebalancing keep them out too).",
            discussion: """
                Files already stored keep the countries they were written under. When the nodes left cannot hold a file, \
                uploads are refused (insufficient_nodes) rather than placed there.
                """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "ISO codes, comma-separated: US,CN.") var countries: String?
        @Flag(help: "Exclude none.") var clear = false

        func run() async throws {
            try await perform {
                guard clear != (countries != nil) else { throw ClientError(.invalidArgument, "give countries (US,CN) or --clear") }
                let codes = (countries ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                let set = try await using(options) { try await $0.setExcludedCountries(codes, try loadSession(options)) }
                if options.json { return printJSON(set) }
                print(set.countries.isEmpty ? "no country excluded" : "excluded: \(set.countries.joined(separator: ", "))")
                if set.placeable == false {
                    print("warning: the nodes outside them cannot hold a file now: uploads are refused until nodes join or you exclude fewer")
                }
            }
        }
    }
}
