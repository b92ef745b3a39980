/// Calls `body` with the bytes of `array`, keeping the error type of `body`.
///
/// Why: the standard library's `Array.withUnsafeBytes` rethrows as `any Error`, which loses
/// the typed errors the modules use (`throws(EncryptionError)`, ...).
public func withBytes<R, E: Error>(
    of array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R
) throws(E) -> R {
    let result: Result<R, E> = array.withUnsafeBytes { bytes in
        Result { () throws(E) in try body(bytes) }
    }
    return try result.get()
}

/// Calls `body` with the mutable bytes of `array`, keeping the error type of `body`.
public func withMutableBytes<R, E: Error>(
    of array: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
) throws(E) -> R {
    let result: Result<R, E> = array.withUnsafeMutableBytes { bytes in
        Result { () throws(E) in try body(bytes) }
    }
    return try result.get()
}
