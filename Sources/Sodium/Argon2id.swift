import CoffreModel
import CSodium

/// Argon2id password hashing through libsodium's `crypto_pwhash`.
///
/// Why libsodium: neither OpenSSL 3.0 nor swift-crypto has Argon2. Parameters are checked
/// against `Limits` before anything is allocated: the floor protects users from weak
/// settings, the ceiling protects clients from a hostile server that sends huge ones.
public enum Argon2id {
    /// Salt length libsodium requires (16 bytes).
    public static let saltSize = Int(crypto_pwhash_SALTBYTES)

    /// Cost parameters of one derivation.
    public struct Parameters: Hashable, Sendable, Codable {
        /// Passes over memory (libsodium's `opslimit`).
        public var operations: UInt64
        /// Memory in bytes (libsodium's `memlimit`).
        public var memoryBytes: UInt64

        public init(operations: UInt64, memoryBytes: UInt64) {
            self.operations = operations
            self.memoryBytes = memoryBytes
        }

        /// The floor: libsodium's INTERACTIVE (2 passes, 64 MiB). Tests use it.
        public static let minimum = Parameters(
            operations: Limits.argon2OpsMin, memoryBytes: Limits.argon2MemoryMin)
        /// The default for new accounts: libsodium's MODERATE (3 passes, 256 MiB), about
        /// half a second on one core of this machine.
        public static let recommended = Parameters(operations: 3, memoryBytes: 256 << 20)

        /// Throws unless the parameters lie between the floor and the ceiling.
        public func validate() throws(SodiumError) {
            guard operations >= Limits.argon2OpsMin, memoryBytes >= Limits.argon2MemoryMin else {
                throw SodiumError(
                    .weakParameters,
                    "Argon2id parameters below the floor: \(operations) passes, "
                        + "\(ByteCount(Int64(memoryBytes))) (floor \(Limits.argon2OpsMin) passes, "
                        + "\(ByteCount(Int64(Limits.argon2MemoryMin))))")
            }
            guard operations <= Limits.argon2OpsMax, memoryBytes <= Limits.argon2MemoryMax else {
                throw SodiumError(
                    .limitExceeded,
                    "Argon2id parameters above the ceiling: \(operations) passes, "
                        + "\(ByteCount(Int64(memoryBytes)))")
            }
        }
    }

    /// Derives `outputSize` bytes from a password and a 16-byte salt.
    public static func derive(
        password: [UInt8], salt: [UInt8], parameters: Parameters, outputSize: Int = 32
    ) throws(SodiumError) -> [UInt8] {
        try parameters.validate()
        guard salt.count == saltSize else {
            throw SodiumError(.invalidArgument, "Argon2id salt must be \(saltSize) bytes, got \(salt.count)")
        }
        guard outputSize >= 16, outputSize <= 64 else {
            throw SodiumError(.invalidArgument, "Argon2id output must be 16...64 bytes, got \(outputSize)")
        }
        Sodium.initialize()
        var output = [UInt8](repeating: 0, count: outputSize)
        // An empty password still needs a valid pointer: use a one-byte buffer.
        let passwordBytes = password.isEmpty ? [0] : password
        let status = output.withUnsafeMutableBufferPointer { out in
            passwordBytes.withUnsafeBufferPointer { pw in
                salt.withUnsafeBufferPointer { s in
                    pw.baseAddress!.withMemoryRebound(to: CChar.self, capacity: pw.count) { pwChars in
                        crypto_pwhash(
                            out.baseAddress!, UInt64(outputSize),
                            pwChars, UInt64(password.count),
                            s.baseAddress!,
                            parameters.operations, Int(parameters.memoryBytes),
                            crypto_pwhash_ALG_ARGON2ID13)
                    }
                }
            }
        }
        guard status == 0 else {
            throw SodiumError(.cryptoFailure, "crypto_pwhash ran out of memory for \(ByteCount(Int64(parameters.memoryBytes)))")
        }
        return output
    }
}

/// Process-wide libsodium set-up and helpers.
public enum Sodium {
    /// Initialises libsodium once; safe to call from any thread, any number of times.
    public static func initialize() {
        // sodium_init is idempotent and thread-safe (returns 1 when already initialised).
        precondition(sodium_init() >= 0, "sodium_init failed")
    }

    /// Overwrites `bytes` with zeros in a way the compiler cannot elide.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { sodium_memzero(base, raw.count) }
        }
    }
}
