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
