import Checksum
import Testing
import TestSupport

@Suite struct CRC32CTests {
    @Test func standardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        // RFC 3720 B.4: 32 bytes of zeros.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }

    @Test(arguments: [1, 7, 64, 1000, 65_537])
    func chainsAcrossPieces(split: Int) {
        var random = SeededGenerator(seed: 42)
        let bytes = random.bytes(100_000)
        let whole = CRC32C.checksum(bytes)
        let first = bytes.withUnsafeBytes { CRC32C.update(0, UnsafeRawBufferPointer(rebasing: $0[..<split])) }
        let both = bytes.withUnsafeBytes { CRC32C.update(first, UnsafeRawBufferPointer(rebasing: $0[split...])) }
        #expect(both == whole)
    }

    @Test func detectsEverySingleBitFlip() {
        var random = SeededGenerator(seed: 7)
        var bytes = random.bytes(512)
        let original = CRC32C.checksum(bytes)
        for bit in 0..<(bytes.count * 8) {
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(CRC32C.checksum(bytes) != original)
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        }
    }
}
