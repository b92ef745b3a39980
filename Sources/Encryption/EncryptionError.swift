public import CoffreModel

/// An error from client-side cryptography.
///
/// Decryption has exactly one failure, `decryptionFailed`, with one message, whatever went
/// wrong (tampering, truncation, wrong key, unknown version): telling them apart would help
/// an attacker and would not help a user, whose only remedy is the same.
public struct EncryptionError: CodedError, Equatable {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// The uniform failure of every authenticated decryption.
    public static let decryptionFailed = EncryptionError(
        .decryptionFailed, "decryption failed: the data is damaged or the key is wrong")
}
