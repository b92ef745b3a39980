public import CoffreModel
import CRocksDB

/// An error from RocksDB, with its status message.
public struct RocksDBError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// Turns a C error string into an error (and frees it); nil when there was none.
    ///
    /// RocksDB's status strings start with the status kind ("Corruption: ..."), which is
    /// how a corrupt block or blob is told apart from other I/O failures.
    static func take(_ error: UnsafeMutablePointer<CChar>?, _ operation: String) -> RocksDBError? {
        guard let error else { return nil }
        let text = String(cString: error)
        rocksdb_free(error)
        let code: ErrorCode = text.hasPrefix("Corruption") ? .corrupt : .storageFailure
        return RocksDBError(code, "\(operation): \(text)")
    }
}
