import HTTPService
import NIOCore
import Testing

@Suite struct BufferPoolTests {
    /// The address of a buffer's storage, to tell reused memory from new.
    static func address(_ buffer: ByteBuffer) -> Int {
        buffer.withVeryUnsafeBytes { Int(bitPattern: $0.baseAddress) }
    }

    @Test func reusesABufferNothingElseHolds() {
        let pool = BufferPool(capacity: 1 << 20, keep: 2)
        var buffer = pool.take()
        #expect(buffer.capacity >= 1 << 20)
        buffer.writeString("segment")
        let first = Self.address(buffer)
        pool.give(buffer)
        buffer = ByteBuffer()
        let again = pool.take()
        #expect(Self.address(again) == first, "the same memory comes back")
        #expect(again.readableBytes == 0, "cleared")
    }

    @Test func neverHandsOutABufferWhoseSliceIsStillAlive() {
        let pool = BufferPool(capacity: 64 << 10, keep: 2)
        var buffer = pool.take()
        buffer.writeString("still queued for a socket")
        let slice = buffer.getSlice(at: 0, length: 11)!
        let held = Self.address(buffer)
        pool.give(buffer)
        buffer = ByteBuffer()
        var other = pool.take()
        #expect(Self.address(other) != held, "a buffer with a live slice stays in the pool")
        other.writeString("overwrite")
        #expect(String(buffer: slice) == "still queue", "the slice is untouched")
    }

    @Test func keepsAtMostItsLimitDroppingTheOldest() {
        let pool = BufferPool(capacity: 4096, keep: 2)
        var addresses: [Int] = []
        do {
            let buffers = (0..<3).map { _ in pool.take() }
            addresses = buffers.map(Self.address)
            for buffer in buffers { pool.give(buffer) }
            // Smaller than the pool's capacity: not kept, and the kept ones stay.
            pool.give(ByteBuffer(repeating: 0, count: 10))
        }
        #expect(Self.address(pool.take()) == addresses[2])
        #expect(Self.address(pool.take()) == addresses[1])
    }
}
