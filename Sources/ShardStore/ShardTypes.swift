public import CoffreModel
public import Foundation
import RocksDB

/// The key of a shard on one node: 1 to `Limits.shardKeySizeMax` bytes.
///
/// The coordinator names shards `<segment id>/<shard number>`; the store treats keys as bytes.
public struct ShardKey: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) throws(ShardStoreError) {
        guard !bytes.isEmpty, bytes.count <= Limits.shardKeySizeMax else {
            throw ShardStoreError(
                .invalidArgument, "shard key must be 1...\(Limits.shardKeySizeMax) bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    public init(_ text: String) throws(ShardStoreError) {
        try self.init(Array(text.utf8))
    }

    public var description: String {
        let printable = bytes.allSatisfy { $0 >= 0x21 && $0 < 0x7f }
        return printable ? String(decoding: bytes, as: UTF8.self) : Hex.encode(bytes)
    }
}

/// What the store keeps about a shard besides its body: 24 bytes in the `meta` family.
///
/// Encoding (big-endian): version u8 (1), 3 zero bytes, CRC-32C u32, length u64,
/// creation time in milliseconds since 1970 u64.
public struct ShardRecord: Hashable, Sendable {
    public let length: UInt64
    public let checksum: UInt32
    /// Milliseconds since 1970, exactly as encoded (the collector compares it to the
    /// millisecond, so it never passes through floating point).
    public let createdAtMilliseconds: UInt64
    /// The body is in RocksDB next to the record, not in a body file: small shards with the
    /// `files` engine (`Limits.shardInlineSizeMax`), every shard with `rocksdbBlobs`.
    public let inline: Bool

    static let encodedSize = 24
    static let version: UInt8 = 1

    public init(length: UInt64, checksum: UInt32, createdAtMilliseconds: UInt64, inline: Bool = false) {
        self.length = length
        self.checksum = checksum
        self.createdAtMilliseconds = createdAtMilliseconds
        self.inline = inline
    }

    /// Kept to the nearest millisecond.
    public init(length: UInt64, checksum: UInt32, createdAt: Date, inline: Bool = false) {
        self.init(length: length, checksum: checksum, createdAtMilliseconds: Self.milliseconds(createdAt), inline: inline)
    }

    public var createdAt: Date { Date(timeIntervalSince1970: Double(createdAtMilliseconds) / 1000) }

    /// A time as whole milliseconds since 1970: nearest, 0 before 1970, clamped far ahead.
    public static func milliseconds(_ date: Date) -> UInt64 {
        let value = (date.timeIntervalSince1970 * 1000).rounded()
        guard value > 0 else { return 0 }
        return value < 1.8e19 ? UInt64(value) : UInt64.max
    }

    /// The 24 bytes kept in the `meta` family.
    public func encoded() -> [UInt8] {
        // Byte 1 holds flags (bit 0: inline); bytes 2 and 3 are reserved, zero.
        var out = [Self.version, inline ? 1 : 0, 0, 0]
        append(UInt64(checksum), bytes: 4, to: &out)
        append(length, bytes: 8, to: &out)
        append(createdAtMilliseconds, bytes: 8, to: &out)
        return out
    }

    /// Reads a record; nil for anything but the encoding above (reserved bits set included).
    public init?(decoding bytes: [UInt8]) {
        guard bytes.count == Self.encodedSize, bytes[0] == Self.version, bytes[1] & ~1 == 0, bytes[2] == 0, bytes[3] == 0 else { return nil }
        func read(_ offset: Int, _ count: Int) -> UInt64 {
            bytes[offset..<(offset + count)].reduce(0) { $0 << 8 | UInt64($1) }
        }
        self.init(length: read(8, 8), checksum: UInt32(read(4, 4)), createdAtMilliseconds: read(16, 8), inline: bytes[1] & 1 == 1)
    }
}

private func append(_ value: UInt64, bytes: Int, to out: inout [UInt8]) {
    for shift in stride(from: (bytes - 1) * 8, through: 0, by: -8) {
        out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
    }
}

/// A verified shard read from the store, in memory the store allocated (no extra copy).
public struct Shard: Sendable {
    public let key: ShardKey
    public let record: ShardRecord
    let bytes_: ShardBytes

    init(key: ShardKey, record: ShardRecord, bytes: ShardBytes) {
        self.key = key
        self.record = record
        self.bytes_ = bytes
    }

    public var count: Int { bytes_.count }

    /// Calls `body` with the shard's bytes; they must not escape it.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try bytes_.withUnsafeBytes(body)
    }

    /// A copy of the bytes.
    public var bytes: [UInt8] { bytes_.withUnsafeBytes { Array($0) } }
}

/// One entry of `ShardStore.list`.
public struct ShardListing: Hashable, Sendable {
    public let key: ShardKey
    public let record: ShardRecord
}

/// What one scrub step (or a whole scrub) found.
public struct ScrubReport: Sendable {
    public struct Finding: Hashable, Sendable {
        public let key: ShardKey
        public let reason: String
    }

    public var scanned = 0
    public var bytesVerified = 0
    public var corrupt: [Finding] = []
    /// Where the next step starts; nil when the scrub reached the end.
    public var cursor: ShardKey?

    public init() {}
}

/// An error from the shard store.
public struct ShardStoreError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
