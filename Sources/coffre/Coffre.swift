import ArgumentParser
import CoffreAPI
import CoffreClient
import CoffreModel
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `coffre`: the command-line client. Everything is encrypted and decrypted here; the
/// cluster sees only ciphertext. Exit codes are stable (Docs/cli.md).
@main
struct Coffre: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffre",
        abstract: "End-to-end encrypted storage over a geo-replicated Coffre cluster.",
        subcommands: [
            Register.self, Login.self, WhoAmI.self, List.self, MakeFolder.self, Put.self, Get.self, Move.self, Remove.self,
            Restore.self, Bin.self, Link.self, Share.self, Unshare.self, Shares.self, Rekey.self, Contacts.self, Takedowns.self, TakedownCommand.self,
            TransparencyCommand.self, AccountCommand.self, Load.self, Admin.self,
        ])
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Profile name (in $COFFRE_HOME/profiles, default ~/.coffre) or path.") var profile: String = "dev"
    @Option(help: "Use only this country's coordinator (ISO code).") var via: String?
    @Option(help: "Use only this coordinator URL.") var coordinator: String?
    @Flag(help: "Print JSON instead of text.") var json = false

    func client() throws -> CoffreClient {
        try CoffreClient(profile: try Profile.load(profile), via: via, coordinator: coordinator)
    }

    /// For a share link: its host first; the profile when there is one (its CA, its other
    /// coordinators), else the system's authorities.
    func client(forLink url: String) throws -> CoffreClient {
        let loaded: Profile?
        do throws(ClientError) { loaded = try Profile.load(profile) } catch where error.code == .notFound { loaded = nil }
        return try CoffreClient.forLink(url, profile: loaded, via: via, coordinator: coordinator)
    }

    var profileName: String { (profile as NSString).lastPathComponent.replacingOccurrences(of: ".json", with: "") }
}

/// Stable exit codes by error code.
enum Exit {
    static func code(for error: any Error) -> Int32 {
        guard let coded = error as? any CodedError else { return 1 }
        switch coded.code {
        case .invalidArgument, .weakParameters, .limitExceeded, .badRequest, .rangeNotSatisfiable, .unsupportedVersion, .passwordRequired: return 2
        case .unauthenticated, .forbidden: return 3
        case .notFound: return 4
        case .conflict, .nameTaken, .keyChanging, .keyChanged: return 5
        case .quotaExceeded, .metadataFull, .nodeFull, .transferQuotaExceeded: return 6
        case .unavailable, .insufficientNodes, .timeout, .rateLimited: return 7
        case .decryptionFailed, .signatureInvalid, .corrupt: return 8
        case .drillRefused: return 9
        case .linkTakenDown, .fileTakenDown, .accountSuspended: return 10
        default: return 1
        }
    }
}

/// Runs a command body, printing errors as `coffre: <code>: message` and exiting with the
/// stable code.
/// A client of the profile's cluster for `body`, shut down before returning (structured: no
/// task outlives the command).
func using<T>(_ options: GlobalOptions, _ body: (CoffreClient) async throws -> T) async throws -> T {
    let client = try options.client()
    do {
        let result = try await body(client)
        try? await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

func perform(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        let text = (error as? any CodedError).map { "\($0.code): \($0.message)" } ?? "\(error)"
        FileHandle.standardError.write(Data("coffre: \(text)\n".utf8))
        throw ExitCode(Exit.code(for: error))
    }
}

/// The password: $COFFRE_PASSWORD, one line of standard input with --password-stdin, or a
/// prompt on the terminal.
/// A password from `variable` in the environment, standard input or the terminal.
///
/// Account and link passwords come from different variables (COFFRE_PASSWORD,
/// COFFRE_LINK_PASSWORD): a link password given out to others must never be the account's.
func readPassword(stdin: Bool, prompt: String = "Password: ", variable: String = "COFFRE_PASSWORD") throws -> String {
    if let password = ProcessInfo.processInfo.environment[variable] { return password }
    if stdin {
        guard let line = readLine(strippingNewline: true) else { throw ClientError(.invalidArgument, "no password on standard input") }
        return line
    }
    guard isatty(0) == 1, let typed = getpass(prompt) else {
        throw ClientError(.invalidArgument, "no password: set \(variable) or use --password-stdin")
    }
    return String(cString: typed)
}

func printJSON(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try! encoder.encode(value), as: UTF8.self))
}

/// A progress line on standard error, only when it is a terminal.
func progressPrinter(_ label: String) -> TransferProgress? {
    guard isatty(2) == 1 else { return nil }
    let start = Date()
    return { done, total in
        let seconds = max(Date().timeIntervalSince(start), 0.001)
        let rate = Double(done) / seconds
        var line = "\r\(label) \(ByteCount(done))"
        if let total, total > 0 {
            let eta = rate > 0 ? Int(Double(total - done) / rate) : 0
            line += " / \(ByteCount(total)) (\(done * 100 / total)%) ETA \(eta / 60):\(String(format: "%02d", eta % 60))"
        }
        line += "  \(ByteCount(Int64(rate)))/s   "
        FileHandle.standardError.write(Data(line.utf8))
        if let total, done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

func loadSession(_ options: GlobalOptions) throws -> Session { try Session.load(profile: options.profileName) }

struct Register: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create an account (the password never leaves this machine).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Username: a-z 0-9 . - _") var username: String
    @Flag(help: "Read the password from standard input.") var passwordStdin = false
    @Flag(help: "Argon2id at its floor (64 MiB, 2 passes): for tests and demos only.") var fastKdf = false

    func run() async throws {
        try await perform {
            let password = try readPassword(stdin: passwordStdin)
            let client = try options.client()
            defer { Task { try? await client.shutdown() } }
            let recovery = try await client.register(username: username, password: password, parameters: fastKdf ? .minimum : .recommended)
            let session = try await client.login(username: username, password: password)
            try session.save(profile: options.profileName)
            if options.json {
                printJSON(["username": username, "accountId": session.accountId, "recoveryKey": recovery.printable])
            } else {
                print("Registered \(username) and logged in.")
                print("Recovery key (shown once; it unlocks your files if you forget the password):")
                print("  \(recovery.printable)")
            }
        }
    }
}

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Log in; the session is kept in $COFFRE_HOME/sessions (mode 0600).")
    @OptionGroup var options: GlobalOptions
    @Argument var username: String
    @Flag(help: "Read the password from standard input.") var passwordStdin = false

    func run() async throws {
        try await perform {
            let password = try readPassword(stdin: passwordStdin)
            let client = try options.client()
            defer { Task { try? await client.shutdown() } }
            let session = try await client.login(username: username, password: password)
            try session.save(profile: options.profileName)
            if options.json { printJSON(["username": session.username, "accountId": session.accountId]) } else { print("Logged in as \(session.username).") }
        }
    }
}

struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show the account, its storage and transfer use.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await perform {
            let client = try options.client()
            defer { Task { try? await client.shutdown() } }
            let session = try loadSession(options)
            let me = try await client.whoami(session)
            let fingerprint = try client.fingerprint(session)
            if options.json {
                printJSON(WhoAmIOutput(
                    accountId: me.accountId, username: me.username, usedBytes: me.usedBytes, quotaBytes: me.quotaBytes, fingerprint: fingerprint,
                    suspension: me.suspension, excludedCountries: me.excludedCountries, transfer: me.transfer))
            } else {
                print("\(me.username) (\(me.accountId)): \(ByteCount(me.usedBytes)) of \(ByteCount(me.quotaBytes)) used")
                if let transfer = me.transfer { print(describe(transfer)) }
                print("key fingerprint: \(fingerprint) (what others compare with coffre contacts)")
                if let countries = me.excludedCountries, !countries.isEmpty {
                    print("excluded countries: \(countries.joined(separator: ", ")) (no new file of yours goes there)")
                }
                if let suspension = me.suspension {
                    print("SUSPENDED by the operator: \(suspension.reason) (coffre takedowns lists takedowns you can appeal)")
                }
            }
        }
    }
}

/// What `coffre whoami --json` prints.
struct WhoAmIOutput: Codable {
    let accountId: String
    let username: String
    let usedBytes: Int64
    let quotaBytes: Int64
    let fingerprint: String
    let suspension: AccountSuspension?
    let excludedCountries: [String]?
    let transfer: TransferUse?
}

/// Runs `body` with the link password: read first when asked for (`--link-password`,
/// `--password-stdin`), else asked at the terminal only if the link turns out to need one.
func withLinkPassword<T>(asked: Bool, stdin: Bool, _ body: (String?) async throws -> T) async throws -> T {
    if asked || stdin { return try await body(try readPassword(stdin: stdin, prompt: "Link password: ", variable: "COFFRE_LINK_PASSWORD")) }
    do {
        return try await body(nil)
    } catch let error as any CodedError where error.code == .passwordRequired && isatty(0) == 1 {
        return try await body(try readPassword(stdin: false, prompt: "Link password: ", variable: "COFFRE_LINK_PASSWORD"))
    }
}

/// What `coffre get LINK --json` prints.
struct LinkDownload: Codable {
    let name: String
    let path: String
    let files: Int
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List a folder (names are decrypted here), yours or a folder link's (no account needed).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "A path, or a folder link https://HOST/l/ID#SECRET.") var path: String = "/"
    @Option(help: "With a folder link: a folder below it, as a/b.") var under: String?
    @Flag(help: "List the folders others shared with you (then use @USER/FOLDER/... paths).") var shared = false
    @Flag(help: "Read the link password from standard input.") var passwordStdin = false
    @Flag(help: "The link has a password: ask for it.") var linkPassword = false
    @Flag(help: "List the rubbish bin instead: where each node was, and when it goes for good.") var bin = false

    func run() async throws {
        if bin { return try await printBin(options) }
        try await perform {
            if shared {
                let incoming = try await using(options) { try await $0.shares(try loadSession(options)).incoming }
                if options.json { return printJSON(incoming) }
                for share in incoming { print("d  \(share.write ? "rw" : "r ")  @\(share.owner)/\(share.name ?? share.nodeId)/") }
                return
            }
            let isLink = path.hasPrefix("https://")
            let client: CoffreClient = try isLink ? options.client(forLink: path) : options.client()
            defer { Task { try? await client.shutdown() } }
            var unreadable: [String] = []
            let entries: [Entry]
            if isLink {
                entries = try await withLinkPassword(asked: linkPassword, stdin: passwordStdin) { try await client.listLink(path, path: under, password: $0) }
            } else {
                (entries, unreadable) = try await client.listing(path, try loadSession(options))
            }
            // Records that do not decrypt are named apart (the rest still lists).
            if !unreadable.isEmpty {
                FileHandle.standardError.write(Data(
                    "warning: \(unreadable.count) node(s) in \(path) cannot be decrypted: \(unreadable.joined(separator: ", ")) (coffre rm --id ID --permanent removes one)\n".utf8))
            }
            // Your files taken down on a notice are flagged (`coffre takedowns` says why).
            var takenDown: [String: TakedownInfo] = [:]
            if !isLink, !path.hasPrefix("@"), !options.json {
                for info in try await client.takedowns(try loadSession(options)) where info.inForce && info.notice.target == "file" {
                    takenDown[info.nodeId] = info
                }
            }
            if options.json { printJSON(entries) } else {
                for entry in entries {
                    let size = entry.size.map { ByteCount(Int64($0)).description } ?? "-"
                    let flag = takenDown[entry.id].map { "  [taken down \($0.notice.scope.words): takedown \($0.notice.id)]" } ?? ""
                    print("\(entry.type == "folder" ? "d" : "-")  \(size.padding(toLength: 12, withPad: " ", startingAt: 0))  \(entry.name)\(entry.type == "folder" ? "/" : "")\(flag)")
                }
            }
        }
    }
}

struct MakeFolder: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mkdir", abstract: "Create a folder.")
    @OptionGroup var options: GlobalOptions
    @Argument var path: String

    func run() async throws {
        try await perform {
            let client = try options.client()
            defer { Task { try? await client.shutdown() } }
            let entry = try await client.mkdir(path, try loadSession(options))
            if options.json { printJSON(entry) }
        }
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Encrypt and upload a file.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Local file.") var local: String
    @Argument(help: "Remote path, or an existing folder.") var remote: String = "/"

    func run() async throws {
        try await perform {
            let client = try options.client()
            defer { Task { try? await client.shutdown() } }
            let entry = try await client.upload(local, to: remote, try loadSession(options), progress: progressPrinter("put"))
            if options.json { printJSON(entry) }
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download and decrypt a file, by path or by share link URL (no account needed for a link; a folder link downloads the whole folder).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Remote path, or https://HOST/l/ID#SECRET (a file or a folder link).") var source: String
    @Argument(help: "Local file or folder (default: its name).") var local: String?
    @Option(help: "Only these plaintext bytes, as START-END (inclusive), written to standard output or LOCAL.") var range: String?
    @Flag(help: "Read the link password from standard input.") var passwordStdin = false
    @Flag(help: "The link has a password: ask for it.") var linkPassword = false

    func run() async throws {
        try await perform {
            let client: CoffreClient = try source.hasPrefix("https://") ? options.client(forLink: source) : options.client()
            defer { Task { try? await client.shutdown() } }
            let wanted = try range.map { text -> Range<UInt64> in
                let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { UInt64($0) }
                guard parts.count == 2, let start = parts[0], let end = parts[1], start <= end, end < UInt64.max else {
                    throw ClientError(.invalidArgument, "--range is START-END, inclusive (for example 0-1023)")
                }
                return start..<(end + 1)
            }
            func output(_ bytes: [UInt8]) throws {
                if let local { try Data(bytes).write(to: URL(fileURLWithPath: local)) } else { FileHandle.standardOutput.write(Data(bytes)) }
            }
            if source.hasPrefix("https://") {
                return try await withLinkPassword(asked: linkPassword, stdin: passwordStdin) { password in
                    if let wanted { return try output(try await client.readLink(source, range: wanted, password: password)) }
                    try await downloadLink(client, password: password)
                }
            }
            let session = try loadSession(options)
            if let wanted { return try output(try await client.read(source, range: wanted, session)) }
            let target = local ?? (source as NSString).lastPathComponent
            try await client.download(source, to: target, session, progress: progressPrinter("get"))
            if options.json { printJSON(["file": target]) }
        }
    }
}

extension Get {
    /// A file or a whole folder through a link; each file of a folder is named on stderr.
    func downloadLink(_ client: CoffreClient, password: String?) async throws {
        let json = options.json
        let announce: (@Sendable (String, UInt64?) -> Void)? = json ? nil : Self.announce
        let result = try await client.downloadLink(source, to: local, password: password, progress: progressPrinter("get"), fileProgress: announce)
        if json { printJSON(LinkDownload(name: result.name, path: local ?? result.name, files: result.files)) }
    }

    @Sendable static func announce(_ path: String, _ size: UInt64?) {
        FileHandle.standardError.write(Data((path + "\n").utf8))
    }
}

struct Move: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mv", abstract: "Move or rename a file or folder.")
    @OptionGroup var options: GlobalOptions
    @Argument var from: String
    @Argument var to: String

    func run() async throws {
        try await perform {
            let client = try options.client()
            defer { Task { try? await client.shutdown() } }
            let entry = try await client.move(from, to: to, try loadSession(options))
            if options.json { printJSON(entry) }
        }
    }
}

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Put a file, or a folder with --recursive, into the rubbish bin; with --permanent, delete it for good.",
        discussion: """
            What is in the bin is hidden from listings, links and shares, still counts to your storage quota, comes back with \
            coffre restore PATH, and is deleted for good by the cluster after its retention (30 days by default) or by coffre bin empty. \
            In a folder shared with you to write, rm puts it into its owner's bin. \
            With --id, the node of that id (what `ls` names as one that cannot be decrypted has no name to give).
            """)
    @OptionGroup var options: GlobalOptions
    @Argument var path: String?
    @Flag(name: [.short, .long]) var recursive = false
    @Flag(help: "Delete for good at once, not through the rubbish bin (a folder with everything below it).") var permanent = false
    @Option(help: "Remove the node of this id (one of yours) instead of a path.") var id: String?

    func validate() throws {
        guard (path == nil) != (id == nil) else { throw ValidationError("give a PATH or --id ID, not both") }
    }

    func run() async throws {
        try await perform {
            let client = try options.client()
            defer { Task { try? await client.shutdown() } }
            let session = try loadSession(options)
            let entry: BinEntry?
            if let id {
                entry = try await client.removeNode(id: id, recursive: recursive, permanent: permanent, session)
            } else {
                entry = try await client.remove(path ?? "", recursive: recursive, permanent: permanent, session)
            }
            let what = path ?? "node \(id ?? "")"
            if options.json { return printJSON(RemoveOutput(path: path, id: entry?.node.id ?? id, permanent: permanent, purgeAt: entry?.purgeAt)) }
            if let entry {
                print("\(what) is in the rubbish bin until \(Date(timeIntervalSince1970: Double(entry.purgeAt) / 1000).ISO8601Format()) (coffre restore \(path ?? "--id " + entry.node.id) brings it back)")
            } else {
                print("\(what) deleted for good")
            }
        }
    }
}

/// What `coffre rm --json` prints.
struct RemoveOutput: Codable {
    let path: String?
    let id: String?
    let permanent: Bool
    /// When the cluster deletes it for good (absent with --permanent).
    let purgeAt: Int64?
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring a file or folder back from the rubbish bin, to where it was.",
        discussion: """
            PATH is where it was (coffre ls --bin lists them); when several were there, the latest put in the bin comes back. \
            Refused (name_taken) when its folder holds another of that name now: rename or remove that one first; and when \
            its folder is in the bin too: restore that first.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Where it was, as /a/b.") var path: String?
    @Option(help: "The bin entry of this id instead of a path.") var id: String?

    func validate() throws {
        guard (path == nil) != (id == nil) else { throw ValidationError("give a PATH or --id ID, not both") }
    }

    func run() async throws {
        try await perform {
            let item = try await using(options) { try await $0.restore(path ?? id ?? "", byId: id != nil, try loadSession(options)) }
            if options.json { return printJSON(item) }
            print("restored \(item.path.isEmpty ? "node " + item.id : item.path)")
        }
    }
}

struct Bin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Your rubbish bin: list it (coffre ls --bin does too) or empty it for good.", subcommands: [BinList.self, Empty.self],
        defaultSubcommand: BinList.self)

    struct BinList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "What is in the rubbish bin, where it was, and when it goes for good.")
        @OptionGroup var options: GlobalOptions

        func run() async throws { try await printBin(options) }
    }

    struct Empty: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete everything in the rubbish bin for good (its storage is freed at once).")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await perform {
                let result = try await using(options) { try await $0.emptyBin(try loadSession(options)) }
                if options.json { return printJSON(result) }
                print("deleted \(result.nodes) file(s) and folder(s) for good, \(ByteCount(result.bytes)) freed")
            }
        }
    }
}

/// `coffre ls --bin`, `coffre bin [ls]`.
func printBin(_ options: GlobalOptions) async throws {
    try await perform {
        let items = try await using(options) { try await $0.bin(try loadSession(options)) }
        if options.json { return printJSON(items) }
        if items.isEmpty { return print("the rubbish bin is empty") }
        for item in items {
            let size = item.size.map { ByteCount(Int64($0)).description } ?? "-"
            let purge = Date(timeIntervalSince1970: Double(item.purgeAt) / 1000).ISO8601Format()
            let path = item.path.isEmpty ? "(cannot be decrypted: id \(item.id))" : item.path + (item.type == "folder" ? "/" : "")
            print("\(item.type == "folder" ? "d" : "-")  \(size.padding(toLength: 12, withPad: " ", startingAt: 0))  until \(purge)  \(path)")
        }
    }
}

struct Link: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Share links: the key sits in the URL fragment, never on a server.", subcommands: [Create.self, Revoke.self, ListLinks.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a share link to a file or a folder (read-only) and print its URL.")
        @OptionGroup var options: GlobalOptions
        @Argument var path: String
        @Option(help: "Expiry, as 30m, 12h or 7d.") var expires: String?
        @Flag(help: "Protect the link with a password (asked, or from COFFRE_LINK_PASSWORD).") var password = false

        func run() async throws {
            try await perform {
                let client = try options.client()
                defer { Task { try? await client.shutdown() } }
                let seconds = try expires.map(Self.duration)
                var secret: String?
                if password {
                    secret = try readPassword(stdin: false, prompt: "Link password: ", variable: "COFFRE_LINK_PASSWORD")
                }
                let (url, id) = try await client.createLink(path, try loadSession(options), expiresIn: seconds, password: secret)
                if options.json { printJSON(["url": url, "linkId": id]) } else { print(url) }
            }
        }

        static func duration(_ text: String) throws -> Int64 {
            guard let unit = text.last, let value = Int64(text.dropLast()), value > 0 else {
                throw ClientError(.invalidArgument, "--expires takes a number and a unit: 30m, 12h, 7d")
            }
            switch unit {
            case "m": return value * 60
            case "h": return value * 3600
            case "d": return value * 86_400
            default: throw ClientError(.invalidArgument, "--expires unit must be m, h or d")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a link (by id or URL).")
        @OptionGroup var options: GlobalOptions
        @Argument var link: String

        func run() async throws {
            try await perform {
                let client = try options.client()
                defer { Task { try? await client.shutdown() } }
                let id = link.hasPrefix("https://") ? String(link.split(separator: "/").last!.split(separator: "#").first!) : link
                try await client.revokeLink(id, try loadSession(options))
            }
        }
    }

    struct ListLinks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List your links.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await perform {
                let client = try options.client()
                defer { Task { try? await client.shutdown() } }
                let links = try await client.links(try loadSession(options))
                if options.json { printJSON(links) } else { for link in links { print("\(link.linkId)  node \(link.nodeId)") } }
            }
        }
    }
}
