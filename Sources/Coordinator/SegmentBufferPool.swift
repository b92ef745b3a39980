import CoffreModel
import NIOCore
import Synchronization

/// Buffers of one size (a segment's shards, or one shard) kept for reuse between segments
/// and transfers.
///
/// Why: a fresh 24 MiB buffer per segment comes from the kernel as new pages, and zeroing
/// them on first touch (`clear_page_erms`) took a third of the coordinator's CPU in the
/// profiles (Docs/performance.md, "Cluster"). Buffers are ordinary `ByteBuffer`s: one given
/// back while a slice of it is still alive is never overwritten under that slice, because
/// `clear()` and writes on a shared `ByteBuffer` copy first (copy-on-write), so the pool is
/// safe whatever the callers hold on to — it only saves work when they hold on to nothing.
final class SegmentBufferPool: Sendable {
    /// Capacity of every buffer.
    let capacity: Int
    /// Buffers kept at most.
    let keep: Int
    private let free: Mutex<[ByteBuffer]>

    init(capacity: Int, keep: Int) {
        self.capacity = capacity
        self.keep = keep
        free = Mutex([])
    }

    /// An empty buffer of `capacity` bytes.
    func take() -> ByteBuffer {
        if var buffer = free.withLock({ $0.popLast() }) {
            buffer.clear()
            return buffer
        }
        return ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Gives a buffer back; kept when the pool holds fewer than `keep`.
    func give(_ buffer: ByteBuffer) {
        guard buffer.capacity >= capacity else { return }
        free.withLock { if $0.count < keep { $0.append(buffer) } }
    }
}
