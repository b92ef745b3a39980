/// A country, by its ISO 3166-1 alpha-2 code ("FR", "NZ"): the failure domain that matters most.
public struct Country: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let code: String

    /// Accepts two ASCII letters, either case; stores upper case.
    public init(_ code: String) throws(ModelError) {
        let upper = code.uppercased()
        guard upper.utf8.count == 2, upper.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
            throw ModelError(.invalidArgument, "a country is an ISO 3166 alpha-2 code such as FR, got \"\(code)\"")
        }
        self.code = upper
    }

    public static func < (a: Country, b: Country) -> Bool { a.code < b.code }
    public var description: String { code }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(code)
    }
}

/// A storage node's identifier: 1 to 64 characters of `a-z 0-9 - _ .`.
public struct NodeID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let value: String

    public init(_ value: String) throws(ModelError) {
        let allowed = value.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
        }
        guard (1...64).contains(value.utf8.count), allowed else {
            throw ModelError(.invalidArgument, "a node id is 1...64 characters of a-z 0-9 - _ ., got \"\(value)\"")
        }
        self.value = value
    }

    public static func < (a: NodeID, b: NodeID) -> Bool { a.value < b.value }
    public var description: String { value }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// What placement knows of a storage node: where it is, how full, whether it answers.
public struct NodeDescriptor: Hashable, Sendable, Codable {
    public var id: NodeID
    public var country: Country
    public var region: String
    public var capacityBytes: Int64
    public var usedBytes: Int64
    public var isUp: Bool

    public init(id: NodeID, country: Country, region: String, capacityBytes: Int64, usedBytes: Int64 = 0, isUp: Bool = true) {
        self.id = id
        self.country = country
        self.region = region
        self.capacityBytes = capacityBytes
        self.usedBytes = usedBytes
        self.isUp = isUp
    }

    public var freeBytes: Int64 { max(0, capacityBytes - usedBytes) }
}
