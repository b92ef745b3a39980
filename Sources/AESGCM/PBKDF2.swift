import CCryptoBoringSSL

/// PBKDF2-HMAC-SHA512 (RFC 8018 §5.2), through BoringSSL.
///
/// Why here and not Argon2id: link passwords must also be unlocked in a browser, where
/// WebCrypto offers PBKDF2 and nothing memory-hard (Docs/keys.md, "Link passwords"). Account
/// passwords stay Argon2id (module `Sodium`).
public enum PBKDF2 {
    /// Derives `count` bytes from `password` and `salt` with `iterations` rounds of
    /// HMAC-SHA512. Callers bound `iterations` (see `Limits.linkPasswordIterationsMax`).
    public static func sha512(password: [UInt8], salt: [UInt8], iterations: Int, count: Int) -> [UInt8] {
        precondition(iterations >= 1 && iterations <= Int(UInt32.max) && count >= 1, "PBKDF2 bounds")
        var output = [UInt8](repeating: 0, count: count)
        let status = password.withUnsafeBufferPointer { passwordBytes in
            salt.withUnsafeBufferPointer { saltBytes in
                output.withUnsafeMutableBufferPointer { out in
                    passwordBytes.withMemoryRebound(to: CChar.self) { passwordChars in
                        CCryptoBoringSSL_PKCS5_PBKDF2_HMAC(
                            passwordChars.baseAddress, passwordChars.count, saltBytes.baseAddress, saltBytes.count,
                            UInt32(iterations), CCryptoBoringSSL_EVP_sha512(), count, out.baseAddress)
                    }
                }
            }
        }
        precondition(status == 1, "PKCS5_PBKDF2_HMAC failed")
        return output
    }
}
