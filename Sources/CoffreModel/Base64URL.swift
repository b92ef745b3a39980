/// Base64url without padding (RFC 4648 section 5), for link ids and secrets in URLs.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index < bytes.count {
            let remaining = min(3, bytes.count - index)
            var block: UInt32 = 0
            for i in 0..<3 { block = block << 8 | UInt32(i < remaining ? bytes[index + i] : 0) }
            for i in 0..<(remaining + 1) { out.append(alphabet[Int((block >> UInt32(18 - 6 * i)) & 63)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes unpadded base64url; nil on any other character or an impossible length.
    public static func decode(_ text: String) -> [UInt8]? {
        var values = [UInt8]()
        values.reserveCapacity(text.utf8.count)
        for c in text.utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(c - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(c - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "_"): values.append(63)
            default: return nil
            }
        }
        guard values.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        var index = 0
        while index < values.count {
            let count = min(4, values.count - index)
            var block: UInt32 = 0
            for i in 0..<4 { block = block << 6 | UInt32(i < count ? values[index + i] : 0) }
            for i in 0..<(count - 1) { out.append(UInt8(truncatingIfNeeded: block >> UInt32(16 - 8 * i))) }
            index += 4
        }
        // Canonical form only: re-encoding must give the same text (no stray low bits).
        return encode(out) == text ? out : nil
    }
}
