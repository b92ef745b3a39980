import ArgumentParser
import CoffreClient
import Foundation

struct Share: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Share one of your folders with another user (its key sealed to their pinned public key, signed by you).",
        discussion: "The recipient sees it as @YOU/FOLDER. Their key is pinned the first time (coffre contacts shows its fingerprint).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "One of your folders.") var path: String
    @Argument(help: "The recipient's username.") var user: String
    @Flag(help: "Let the recipient add, rename and delete inside the folder.") var write = false

    func run() async throws {
        try await perform {
            try await using(options) { client in
                let entry = try await client.share(path, with: user, write: write, try loadSession(options))
                let contact = try client.contacts().first { $0.username == entry.recipient }
                if options.json { printJSON(entry) } else {
                    print("shared \(entry.name ?? path) with \(entry.recipient) (\(entry.write ? "read and write" : "read only"))")
                    if let contact { print("\(contact.username)'s key fingerprint: \(contact.fingerprint)\(contact.verified ? " (verified)" : " (compare it with theirs: coffre contacts verify \(contact.username))")") }
                }
            }
        }
    }
}

struct Unshare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop sharing a folder with a user: the cluster refuses them from now on, and the folder gets new keys.",
        discussion: """
            The folder and every folder below it get new keys, sealed again for the shares that remain: what is added \
            later is out of the former recipient's reach. What they already downloaded they keep. Links to these folders \
            stop working (links to files keep working). If this is cut short, coffre rekey finishes it.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument var path: String
    @Argument var user: String

    func run() async throws {
        try await perform {
            try await using(options) { client in
                let folders = try await client.unshare(path, with: user, try loadSession(options))
                if options.json { printJSON(["folders": folders]) } else { print("\(user) no longer has \(path); \(folders) folder(s) got new keys") }
            }
        }
    }
}

struct Rekey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Give a folder and every folder below it new keys (what unshare does); finish key changes cut short.",
        discussion: """
            With PATH: that folder and every folder below it get new keys. Without: every key
            change of your folders that was cut short, or is due below a folder whose share
            ended, is finished (the coordinator keeps the list). Writes into a folder whose
            key is changing are refused with key_changing until then; your own client finishes
            the change by itself when it meets one.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "A folder of yours (none: finish what is unfinished).") var path: String?

    func run() async throws {
        try await perform {
            try await using(options) { client in
                let session = try loadSession(options)
                let folders: Int
                if let path { folders = try await client.rekey(path, session) } else { folders = try await client.finishKeyChanges(session) }
                if options.json { printJSON(["folders": folders]) } else { print("\(folders) folder(s) got new keys") }
            }
        }
    }
}

/// What `coffre shares --json` prints.
struct ShareListing: Codable {
    let outgoing: [ShareEntry]
    let incoming: [ShareEntry]
}

struct Shares: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the folders you share and those shared with you.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await perform {
            try await using(options) { client in
                let (outgoing, incoming) = try await client.shares(try loadSession(options))
                if options.json { return printJSON(ShareListing(outgoing: outgoing, incoming: incoming)) }
                print("shared by you:")
                for share in outgoing { print("  \(share.name ?? share.nodeId)  ->  \(share.recipient)  \(share.write ? "rw" : "r")") }
                print("shared with you:")
                for share in incoming { print("  @\(share.owner)/\(share.name ?? share.nodeId)  \(share.write ? "rw" : "r")") }
            }
        }
    }
}

struct Contacts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The public keys you pinned for other users, and their fingerprints.", subcommands: [ListContacts.self, Verify.self],
        defaultSubcommand: ListContacts.self)

    struct ListContacts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List pinned contacts.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await perform {
                let contacts = try ContactBook.load(file: ContactBook.path(profile: try Profile.load(options.profile).name)).contacts.values
                    .sorted { $0.username < $1.username }
                if options.json { return printJSON(contacts) }
                for contact in contacts { print("\(contact.username)  \(contact.fingerprint)  \(contact.verified ? "verified" : "not verified")") }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare a contact's pinned key with the server's; --accept takes a new key after you checked its fingerprint with them.")
        @OptionGroup var options: GlobalOptions
        @Argument var user: String
        @Option(help: "The new fingerprint, as the contact told it to you.") var accept: String?

        func run() async throws {
            try await perform {
                try await using(options) { client in
                    let (pinned, served) = try await client.verifyContact(user, accept: accept, try loadSession(options))
                    let differ = pinned.map { $0.fingerprint != served && accept == nil } ?? false
                    if options.json {
                        printJSON(["user": user, "pinned": pinned?.fingerprint ?? "", "server": served])
                    } else {
                        print("pinned: \(pinned?.fingerprint ?? "(none: pinned now)")")
                        print("server: \(served)")
                    }
                    if differ {
                        throw ClientError(.signatureInvalid, "the keys differ: ask \(user) for their fingerprint (coffre whoami shows it) and run again with --accept")
                    }
                    if options.json { return }
                    print("compare this with the fingerprint \(user) sees for their own keys (coffre whoami).")
                }
            }
        }
    }
}
