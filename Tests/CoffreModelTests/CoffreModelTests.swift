import CoffreModel
import Foundation
import Testing

@Suite struct ErasurePolicyTests {
    @Test(arguments: [(0, 1), (49, 1), (6, -1), (6, 33), (40, 30)])
    func refusesOutOfRangePolicies(k: Int, m: Int) {
        #expect(throws: ModelError.self) { try ErasurePolicy(dataShards: k, parityShards: m) }
    }

    @Test func shardLengthRoundsUp() throws {
        let policy = try ErasurePolicy(dataShards: 6, parityShards: 3)
        #expect(policy.shardLength(forSegmentLength: 0) == 0)
        #expect(policy.shardLength(forSegmentLength: 1) == 1)
        #expect(policy.shardLength(forSegmentLength: 6) == 1)
        #expect(policy.shardLength(forSegmentLength: 7) == 2)
        #expect(policy.totalShards == 9)
        #expect(policy.description == "RS(6,3)")
    }
}

@Suite struct EncodingTests {
    @Test func hexRoundTrips() {
        let bytes: [UInt8] = [0, 1, 0x7f, 0x80, 0xff]
        #expect(Hex.encode(bytes) == "00017f80ff")
        #expect(Hex.decode("00017F80ff") == bytes)
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }

    @Test(arguments: 0..<40)
    func base64URLRoundTrips(length: Int) {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
        let text = Base64URL.encode(bytes)
        #expect(!text.contains("="))
        #expect(Base64URL.decode(text) == bytes)
    }

    @Test func base64URLRefusesNonCanonicalInput() {
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xfb, 0xff])
        #expect(Base64URL.decode("a") == nil)  // impossible length
        #expect(Base64URL.decode("ab+/") == nil)  // standard alphabet
        #expect(Base64URL.decode("AB") == nil)  // stray low bits: canonical is "AA"
        #expect(Base64URL.decode("AA") == [0])
    }

    @Test func byteCountPrintsForPeople() {
        #expect(ByteCount(512).description == "512 B")
        #expect(ByteCount.mebibytes(4).description == "4.0 MiB")
        #expect(ByteCount(1536).description == "1.5 KiB")
    }
}

@Suite struct ManifestValidationTests {
    static let policy = try! ErasurePolicy(dataShards: 2, parityShards: 1)

    static func segment(_ index: Int, _ length: Int, shards: Int = 3, shardLength: Int? = nil) -> SegmentManifest {
        SegmentManifest(
            index: index, length: length, shardLength: shardLength ?? policy.shardLength(forSegmentLength: length),
            shards: (0..<shards).map { ShardLocation(index: $0, node: try! NodeID("n-\($0)"), checksum: 0) }, placementDebt: false)
    }

    static func manifest(length: Int64, _ segments: [SegmentManifest], id: String = "AAAA") -> ObjectManifest {
        ObjectManifest(id: id, owner: "o", length: length, segmentSize: 10, policy: policy, segments: segments, createdAt: 0)
    }

    static func encoded(_ manifest: ObjectManifest) -> [UInt8] { Array(try! JSONEncoder().encode(manifest)) }

    @Test func aManifestAsWritersMakeThemDecodes() throws {
        let good = Self.manifest(length: 25, [Self.segment(0, 10), Self.segment(1, 10), Self.segment(2, 5)])
        #expect(try ObjectManifest.decode(Self.encoded(good)) == good)
        let empty = Self.manifest(length: 0, [])
        #expect(try ObjectManifest.decode(Self.encoded(empty)) == empty)
    }

    /// A manifest whose numbers disagree would have reads index past its arrays: it is refused
    /// as `corrupt` with the reason, before anything uses it.
    @Test(arguments: [
        ("too few shards", manifest(length: 5, [segment(0, 5, shards: 2)])),
        ("a segment too many", manifest(length: 5, [segment(0, 5), segment(1, 5)])),
        ("a short middle segment", manifest(length: 15, [segment(0, 5), segment(1, 10)])),
        ("lengths that do not add up", manifest(length: 12, [segment(0, 10), segment(1, 5)])),
        ("a shard length off by one", manifest(length: 5, [segment(0, 5, shardLength: 4)])),
        ("segments out of order", manifest(length: 20, [segment(1, 10), segment(0, 10)])),
        ("a negative length", manifest(length: -1, [])),
        ("a slash in the id", manifest(length: 0, [], id: "a/b")),
    ])
    func aManifestWhoseNumbersDisagreeIsCorrupt(what: String, manifest: ObjectManifest) {
        #expect("\(what)") { _ = try ObjectManifest.decode(Self.encoded(manifest)) } throws: { ($0 as? ModelError)?.code == .corrupt }
    }

    @Test func bytesThatAreNotAManifestAreCorrupt() {
        #expect(throws: ModelError.self) { _ = try ObjectManifest.decode(Array("{\"id\":1}".utf8)) }
        #expect(throws: ModelError.self) { _ = try ObjectManifest.decode([0xff, 0x00]) }
    }
}

/// What a user may name as a country for its files: the codes ISO 3166-1 assigns.
@Suite struct CountryCodeTests {
    @Test func assignedCodesPassAndOthersAreNamed() throws {
        #expect(Country.officialCodes.count == 249)
        #expect(try Country.assigned("nz").code == "NZ" && (try Country.assigned("GB").code) == "GB")
        for (code, says) in [("UK", "GB"), ("XX", "XX"), ("EU", "member")] {
            #expect { _ = try Country.assigned(code) } throws: { ($0 as? ModelError)?.code == .invalidArgument && ($0 as? ModelError)?.message.contains(says) == true }
        }
        #expect(try Country("XX").code == "XX", "a topology may still use any two letters")
    }
}
