import CoffreModel
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
