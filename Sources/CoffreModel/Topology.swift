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

    /// The 249 codes ISO 3166-1 assigns (2024). Cluster topologies may use any two letters
    /// (a test or a private label); what a user names for its files must be one of these
    /// (`assigned`), so that a mistyped or unofficial code ("UK") is refused, not ignored.
    public static let officialCodes: Set<String> = Set([
        "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE",
        "BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD",
        "CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM",
        "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF",
        "GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU",
        "ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN",
        "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME",
        "MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA",
        "NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM",
        "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI",
        "SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK",
        "TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI",
        "VN VU WF WS YE YT ZA ZM ZW",
    ].joined(separator: " ").split(separator: " ").map(String.init))

    /// A code ISO 3166-1 assigns; `invalid_argument` naming the usual mistakes otherwise.
    public static func assigned(_ code: String) throws(ModelError) -> Country {
        let country = try Country(code)
        guard officialCodes.contains(country.code) else {
            let hint = ["UK": " (the United Kingdom is GB)", "EL": " (Greece is GR)", "EU": " (name the member countries)"][country.code] ?? ""
            throw ModelError(.invalidArgument, "\(country.code) is not a country code ISO 3166-1 assigns\(hint)")
        }
        return country
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
