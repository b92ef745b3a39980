import AESGCM
import CoffreModel
public import Sodium

/// Keys derived from the password: one authenticates to the server, one wraps the master key.
///
/// Argon2id(password, per-account salt) gives a 32-byte root; HKDF splits it. The server sees
/// only the authentication key (and stores only its hash), from which neither the password
/// nor the wrapping key can be computed.
public struct PasswordKeys: Sendable {
    public let authenticationKey: SecretKey
    public let wrappingKey: SecretKey

    public static func derive(
        password: String, salt: [UInt8], parameters: Argon2id.Parameters
    ) throws(EncryptionError) -> PasswordKeys {
        let root: [UInt8]
        do {
            root = try Argon2id.derive(password: Array(password.utf8), salt: salt, parameters: parameters)
        } catch {
            throw EncryptionError(error.code, error.message)
        }
        let rootKey = try SecretKey(bytes: root)
        return PasswordKeys(
            authenticationKey: rootKey.derive(.authentication),
            wrappingKey: rootKey.derive(.passwordWrapping))
    }
}

/// What the server keeps of an account's keys: nothing it can open.
public struct AccountKeyRecord: Hashable, Sendable, Codable {
    public let accountId: String
    /// Argon2id salt, 16 random bytes.
    public let passwordSalt: [UInt8]
    public let passwordParameters: Argon2id.Parameters
    public let masterKeyByPassword: WrappedKey
    public let masterKeyByRecoveryKey: WrappedKey
    public let publicIdentity: PublicIdentity
}

/// Creating and unlocking an account's master key.
public enum AccountKeys {
    /// Everything a new account needs: the server's record, the authentication key to send at
    /// registration, the recovery key to show the user once, and the master key.
    public struct Creation: Sendable {
        public let record: AccountKeyRecord
        public let authenticationKey: SecretKey
        public let recoveryKey: RecoveryKey
        public let masterKey: SecretKey
    }

    static func masterContext(_ accountId: String, by method: String) -> WrapContext {
        WrapContext(type: "master-key/\(method)", owner: accountId, subject: accountId)
    }

    /// Creates a random master key, wrapped by the password and by a new recovery key.
    public static func create(
        accountId: String, password: String, parameters: Argon2id.Parameters = .recommended
    ) throws(EncryptionError) -> Creation {
        let salt = secureRandomBytes(Argon2id.saltSize)
        let passwordKeys = try PasswordKeys.derive(password: password, salt: salt, parameters: parameters)
        let master = SecretKey.random()
        let recovery = RecoveryKey.random()
        let record = AccountKeyRecord(
            accountId: accountId, passwordSalt: salt, passwordParameters: parameters,
            masterKeyByPassword: .wrap(master, under: passwordKeys.wrappingKey, context: masterContext(accountId, by: "password")),
            masterKeyByRecoveryKey: .wrap(master, under: recovery.key, context: masterContext(accountId, by: "recovery")),
            publicIdentity: Identity(masterKey: master).publicIdentity)
        return Creation(record: record, authenticationKey: passwordKeys.authenticationKey, recoveryKey: recovery, masterKey: master)
    }

    /// The master key, from the password. Refuses parameters under the floor (a server
    /// cannot talk a client into weak hashing).
    public static func unlock(_ record: AccountKeyRecord, password: String) throws(EncryptionError) -> SecretKey {
        let keys = try PasswordKeys.derive(password: password, salt: record.passwordSalt, parameters: record.passwordParameters)
        return try record.masterKeyByPassword.unwrap(under: keys.wrappingKey, context: masterContext(record.accountId, by: "password"))
    }

    /// The master key, from the recovery key.
    public static func recover(_ record: AccountKeyRecord, recoveryKey: RecoveryKey) throws(EncryptionError) -> SecretKey {
        try record.masterKeyByRecoveryKey.unwrap(under: recoveryKey.key, context: masterContext(record.accountId, by: "recovery"))
    }
}

/// A recovery key: 32 random bytes shown once, printed in Crockford base32 with a checksum.
///
/// Printed form: the key and the first 2 bytes of its SHA-256 (34 bytes, 272 bits) as 55
/// Crockford base32 digits, in groups of 5 joined by "-". Parsing ignores case, spaces and
/// dashes, reads I and L as 1 and O as 0, and checks the checksum, so a typo is caught
/// before any decryption is tried.
public struct RecoveryKey: Sendable, Hashable {
    public let key: SecretKey

    static let digits = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public init(key: SecretKey) { self.key = key }

    public static func random() -> RecoveryKey { RecoveryKey(key: .random()) }

    public var printable: String {
        let payload = key.bytes + Array(sha256(key.bytes).prefix(2))
        var bits = 0
        var value = 0
        var out = [UInt8]()
        for byte in payload {
            value = (value << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                out.append(Self.digits[(value >> (bits - 5)) & 31])
                bits -= 5
            }
            value &= (1 << bits) - 1
        }
        if bits > 0 { out.append(Self.digits[(value << (5 - bits)) & 31]) }
        var grouped = ""
        for (i, c) in out.enumerated() {
            if i > 0 && i % 5 == 0 { grouped += "-" }
            grouped.append(Character(UnicodeScalar(c)))
        }
        return grouped
    }

    /// Parses the printed form. Throws `invalidArgument` on a typo.
    public init(printable text: String) throws(EncryptionError) {
        var values = [Int]()
        for c in text.uppercased().utf8 {
            switch c {
            case UInt8(ascii: "-"), UInt8(ascii: " "): continue
            case UInt8(ascii: "I"), UInt8(ascii: "L"): values.append(1)
            case UInt8(ascii: "O"): values.append(0)
            default:
                guard let index = Self.digits.firstIndex(of: c) else {
                    throw EncryptionError(.invalidArgument, "recovery key has a character that is not base32: \(Character(UnicodeScalar(c)))")
                }
                values.append(index)
            }
        }
        guard values.count == 55 else {
            throw EncryptionError(.invalidArgument, "recovery key has \(values.count) digits, expected 55")
        }
        var bytes = [UInt8]()
        var bits = 0
        var value = 0
        for digit in values {
            value = (value << 5) | digit
            bits += 5
            if bits >= 8 {
                bytes.append(UInt8((value >> (bits - 8)) & 0xff))
                bits -= 8
                value &= (1 << bits) - 1
            }
        }
        let key = Array(bytes.prefix(32))
        guard bytes.count == 34, Array(bytes[32..<34]) == Array(sha256(key).prefix(2)) else {
            throw EncryptionError(.invalidArgument, "recovery key checksum does not match: a digit is mistyped")
        }
        self.key = try SecretKey(bytes: key)
    }
}
