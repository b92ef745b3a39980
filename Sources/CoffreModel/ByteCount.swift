/// A number of bytes, printed for people ("4.0 MiB").
public struct ByteCount: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var bytes: Int64

    public init(_ bytes: Int64) { self.bytes = bytes }
    public init(_ bytes: Int) { self.bytes = Int64(bytes) }

    public static func kibibytes(_ n: Int64) -> ByteCount { ByteCount(n << 10) }
    public static func mebibytes(_ n: Int64) -> ByteCount { ByteCount(n << 20) }
    public static func gibibytes(_ n: Int64) -> ByteCount { ByteCount(n << 30) }

    public static func < (a: ByteCount, b: ByteCount) -> Bool { a.bytes < b.bytes }

    public var description: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let tenths = (value * 10).rounded() / 10
        return "\(tenths) \(units[unit])"
    }
}

extension ByteCount {
    /// Parses a size as people write it: `300MB`, `1.5 GiB`, `4096`, `100 MB/s` (a rate's
    /// `/s` is allowed and ignored). Decimal units are powers of 1000 (KB, MB, GB, TB),
    /// binary ones powers of 1024 (KiB, MiB, GiB, TiB); a bare number is bytes.
    public init(parsing text: String) throws(ModelError) {
        var body = text.trimmingWhitespace()
        if body.lowercased().hasSuffix("/s") { body = String(body.dropLast(2)).trimmingWhitespace() }
        let digits = body.prefix { $0.isNumber || $0 == "." }
        let unit = body.dropFirst(digits.count).trimmingWhitespace().lowercased()
        let scales: [String: Double] = [
            "": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
            "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824, "tib": 1_099_511_627_776,
        ]
        guard let value = Double(digits), let scale = scales[unit], value * scale < 9e18 else {
            throw ModelError(.invalidArgument, "a size is a number and a unit such as 300MB, 1.5GiB or 4096, got \"\(text)\"")
        }
        self.init(Int64((value * scale).rounded()))
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
