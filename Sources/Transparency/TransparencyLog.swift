public import CoffreModel
import Crypto
import Foundation

/// One entry of the transparency log (Docs/policy.md, "Transparency log"): what an operator
/// did to a link, a file or an account, never what it holds. Entries are chained (each names
/// the hash of the one before) and signed with the cluster's Ed25519 key, so that an entry
/// edited, removed or inserted afterwards is found by anyone who reads the log.
public struct TransparencyEntry: Codable, Hashable, Sendable {
    /// 0, 1, 2, … with no gap.
    public let seq: Int64
    /// Milliseconds since 1970.
    public let at: Int64
    /// `takedown`, `restore`, `appeal`, `suspend`, `unsuspend`.
    public let action: String
    /// The takedown's id (empty for an account's entries).
    public let takedown: String
    /// `link`, `file` or `account`.
    public let target: String
    /// Lower-case hex SHA-256 of the link id (or of the account id): whoever holds the link
    /// finds its entries; nobody else learns a link from the log.
    public let subject: String
    public let reason: String
    public let scope: String
    /// The notice's reference (for a suspension: the operator's reason).
    public let notice: String
    /// The `hash` of the entry before (64 zeros for the first).
    public let previous: String
    /// The signing key, raw Ed25519 public key in base64url.
    public let key: String
    /// Lower-case hex SHA-256 of the entry's canonical bytes (`TransparencyLog.canonical`).
    public let hash: String
    /// Ed25519 over the 32 bytes of `hash`, base64url.
    public let signature: String

    public init(
        seq: Int64, at: Int64, action: String, takedown: String, target: String, subject: String, reason: String, scope: String, notice: String,
        previous: String, key: String, hash: String, signature: String
    ) {
        self.seq = seq
        self.at = at
        self.action = action
        self.takedown = takedown
        self.target = target
        self.subject = subject
        self.reason = reason
        self.scope = scope
        self.notice = notice
        self.previous = previous
        self.key = key
        self.hash = hash
        self.signature = signature
    }
}

extension TransparencyEntry {
    /// The fields the action gave.
    public var event: TransparencyEvent {
        TransparencyEvent(action: action, takedown: takedown, target: target, subject: subject, reason: reason, scope: scope, notice: notice)
    }
}

/// What an action records; the log adds the sequence, the chain and the signature.
public struct TransparencyEvent: Hashable, Sendable {
    public let action: String
    public let takedown: String
    public let target: String
    public let subject: String
    public let reason: String
    public let scope: String
    public let notice: String

    public init(action: String, takedown: String, target: String, subject: String, reason: String, scope: String, notice: String) {
        self.action = action
        self.takedown = takedown
        self.target = target
        self.subject = subject
        self.reason = reason
        self.scope = scope
        self.notice = notice
    }
}

/// The last entry's sequence number and hash: what the next entry chains to.
public struct TransparencyHead: Codable, Hashable, Sendable {
    public let seq: Int64
    public let hash: String
    public init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
    }
}

/// `GET /v1/transparency?after=SEQ&limit=N`: a page of the log, oldest first.
public struct TransparencyPage: Codable, Hashable, Sendable {
    public let entries: [TransparencyEntry]
    /// The `after` of the next page; absent on the last.
    public let next: Int64?
    /// The key the cluster signs with now (base64url).
    public let publicKey: String
    public init(entries: [TransparencyEntry], next: Int64?, publicKey: String) {
        self.entries = entries
        self.next = next
        self.publicKey = publicKey
    }
}

/// The cluster's signing key and the log's rules: canonical bytes, chaining and verification.
public struct TransparencyLog: Sendable {
    public static let domain = "coffre-transparency-v1"
    public static let genesis = String(repeating: "0", count: 64)

    let signingKey: Curve25519.Signing.PrivateKey

    /// The key every coordinator derives from the cluster's admin token (HKDF-SHA256, salt
    /// `coffre-transparency-v1`, info `ed25519 signing key`, 32 bytes as the Ed25519 seed): all
    /// coordinators sign with one key and no other secret has to be handed out.
    public init(adminToken: String) {
        let seed = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Array(adminToken.utf8)), salt: Array(Self.domain.utf8), info: Array("ed25519 signing key".utf8),
            outputByteCount: 32)
        signingKey = try! Curve25519.Signing.PrivateKey(rawRepresentation: seed.withUnsafeBytes { Array($0) })
    }

    /// A key of its own (`transparency_key_file`): the Ed25519 seed, 32 bytes. Rotating the
    /// admin token then leaves the log's key alone.
    public init(seed: [UInt8]) throws(ModelError) {
        guard seed.count == 32, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw ModelError(.invalidArgument, "a transparency key is a 32-byte Ed25519 seed, got \(seed.count) bytes")
        }
        signingKey = key
    }

    /// A new seed, as a key file holds it (base64url, one line).
    public static func newKeyFile() -> String { Base64URL.encode(Array(Curve25519.Signing.PrivateKey().rawRepresentation)) }

    /// The seed in a key file's text (base64url of 32 bytes; surrounding space ignored).
    public static func seed(keyFile text: String) throws(ModelError) -> [UInt8] {
        guard let seed = Base64URL.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)), seed.count == 32 else {
            throw ModelError(.invalidArgument, "a transparency key file holds the base64url of a 32-byte Ed25519 seed (coffre admin transparency-key FILE makes one)")
        }
        return seed
    }

    public var publicKey: String { Base64URL.encode(Array(signingKey.publicKey.rawRepresentation)) }

    /// The bytes an entry's hash covers: the domain, then every field but `hash` and
    /// `signature` in this order, each as a 4-byte big-endian length and its UTF-8 bytes
    /// (numbers in decimal).
    public static func canonical(
        seq: Int64, at: Int64, event: TransparencyEvent, previous: String, key: String
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        for field in [
            domain, String(seq), String(at), event.action, event.takedown, event.target, event.subject, event.reason, event.scope, event.notice,
            previous, key,
        ] {
            let utf8 = Array(field.utf8)
            let count = UInt32(utf8.count)
            bytes += [UInt8(count >> 24), UInt8(count >> 16 & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count & 0xFF)]
            bytes += utf8
        }
        return bytes
    }

    /// The entry after `head` (the first when nil), signed.
    public func entry(after head: TransparencyHead?, at: Int64, _ event: TransparencyEvent) -> TransparencyEntry {
        let seq = head.map { $0.seq + 1 } ?? 0
        let previous = head?.hash ?? Self.genesis
        let digest = Array(SHA256.hash(data: Self.canonical(seq: seq, at: at, event: event, previous: previous, key: publicKey)))
        let signature = try! signingKey.signature(for: digest)
        return TransparencyEntry(
            seq: seq, at: at, action: event.action, takedown: event.takedown, target: event.target, subject: event.subject, reason: event.reason,
            scope: event.scope, notice: event.notice, previous: previous, key: publicKey, hash: Hex.encode(digest),
            signature: Base64URL.encode(Array(signature)))
    }

    /// Lower-case hex SHA-256 of a link or account id: an entry's `subject`.
    public static func subject(_ id: String) -> String { Hex.encode(Array(SHA256.hash(data: Array(id.utf8)))) }
}

/// What `coffre transparency verify` found: the chain, the signatures, and the figures a
/// transparency report publishes.
public struct TransparencyReport: Codable, Hashable, Sendable {
    public struct Problem: Codable, Hashable, Sendable {
        public let seq: Int64
        public let problem: String
    }

    public var entries: Int
    public var valid: Bool
    public var problems: [Problem]
    /// The keys that signed, in order of first use.
    public var keys: [String]
    /// The last entry's hash: publish it, and a later log that does not extend it was rewritten.
    public var head: String?
    /// The last entry's sequence number (with `head`, what a later check compares against).
    public var headSeq: Int64?
    public var byAction: [String: Int]
    /// Takedowns (the `takedown` action) by reason and by scope.
    public var byReason: [String: Int]
    public var byScope: [String: Int]
}

extension TransparencyLog {
    /// Checks a whole log, oldest first: sequence without gaps, each entry chained to the one
    /// before, its hash recomputed, its signature valid under its key, and that key among
    /// `trusted` (any key when nil). Every problem is named by its entry.
    /// With `known`, a head verified before (kept by the verifier, or published): the log must
    /// still hold that entry with that hash, or it was cut short or rewritten since, whatever
    /// its own chain says.
    public static func verify(_ entries: [TransparencyEntry], trusted: Set<String>?, known: KnownHead? = nil) -> TransparencyReport {
        var report = TransparencyReport(
            entries: entries.count, valid: true, problems: [], keys: [], head: entries.last?.hash, headSeq: entries.last?.seq, byAction: [:], byReason: [:],
            byScope: [:])
        func problem(_ seq: Int64, _ text: String) {
            report.valid = false
            report.problems.append(.init(seq: seq, problem: text))
        }
        var previous = genesis
        for (index, entry) in entries.enumerated() {
            if entry.seq != Int64(index) { problem(entry.seq, "out of sequence: entry \(index) says it is \(entry.seq) (an entry was removed or inserted)") }
            if entry.previous != previous { problem(entry.seq, "does not chain to the entry before (its previous hash differs)") }
            let digest = Array(SHA256.hash(data: canonical(seq: entry.seq, at: entry.at, event: entry.event, previous: entry.previous, key: entry.key)))
            if Hex.encode(digest) != entry.hash { problem(entry.seq, "its hash does not match its fields (the entry was edited)") }
            // The signature covers the hash as stored: an edited field is one problem (its hash),
            // a hash recomputed without the key another (its signature).
            if let raw = Base64URL.decode(entry.key), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw),
                let signature = Base64URL.decode(entry.signature), let stored = Hex.decode(entry.hash), stored.count == 32
            {
                if !key.isValidSignature(signature, for: stored) { problem(entry.seq, "its signature is not valid") }
            } else {
                problem(entry.seq, "its key, hash or signature is malformed")
            }
            if let trusted, !trusted.contains(entry.key) { problem(entry.seq, "signed by a key that is not trusted (\(entry.key))") }
            if !report.keys.contains(entry.key) { report.keys.append(entry.key) }
            previous = entry.hash
            if let known, known.seq == Int64(index), entry.hash != known.hash {
                problem(entry.seq, "differs from the head verified before (hash \(known.hash)): the log was rewritten since")
            }
            report.byAction[entry.action, default: 0] += 1
            if entry.action == "takedown" {
                report.byReason[entry.reason, default: 0] += 1
                report.byScope[entry.scope, default: 0] += 1
            }
        }
        if let known, known.seq >= Int64(entries.count) {
            problem(known.seq, "the log ends before the head verified before (entry \(known.seq)): it was cut short since")
        }
        return report
    }
}

/// A head of the log verified before: its last entry's sequence number and hash.
public struct KnownHead: Codable, Hashable, Sendable {
    public let seq: Int64
    public let hash: String
    public init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
    }

    /// `SEQ:HASH`, as `coffre transparency verify --head` takes it and prints it.
    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let seq = Int64(parts[0]), seq >= 0, parts[1].count == 64, parts[1].allSatisfy(\.isHexDigit) else { return nil }
        self.init(seq: seq, hash: parts[1].lowercased())
    }

    public var description: String { "\(seq):\(hash)" }
}

/// SHA-256 of bytes read in pieces (a file checked against a takedown notice's claim).
public struct ContentDigest: Sendable {
    private var hasher = SHA256()
    public init() {}
    public mutating func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }
    /// Lower-case hex.
    public func finish() -> String { Hex.encode(Array(hasher.finalize())) }
}
