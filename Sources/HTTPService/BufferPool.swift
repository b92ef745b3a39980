public import NIOCore
import Synchronization

/// Buffers kept for reuse between transfers: a coordinator's segment and shard buffers, a
/// storage node's shard bodies.
///
/// Why: a fresh multi-MiB buffer comes from the kernel as new pages, and zeroing them on
/// first touch (`clear_page_erms`) took a third of the coordinator's CPU in the profiles
/// (Docs/performance.md, "Cluster"). Buffers are ordinary `ByteBuffer`s, handed out
/// again only once nothing else references them, so a slice still queued somewhere is never
/// overwritten (and were one shared anyway, writes on a shared `ByteBuffer` copy first).
public final class BufferPool: Sendable {
    /// Capacity of every buffer.
    public let capacity: Int
    /// Buffers kept at most.
    public let keep: Int
    private let free: Mutex<[ByteBuffer]>

    public init(capacity: Int, keep: Int) {
        precondition(capacity > 0 && keep > 0)
        self.capacity = capacity
        self.keep = keep
        free = Mutex([])
    }

    /// An empty buffer of at least `capacity` bytes: a kept one that nothing else holds any
    /// more, or a new one.
    public func take() -> ByteBuffer {
        let reused: ByteBuffer? = free.withLock { free in
            // A buffer given back may still be referenced for a while (a slice of it queued
            // for a socket); take one that is not, and leave the others for later.
            for index in free.indices.reversed() {
                if free[index].modifyIfUniquelyOwned({ $0.clear() }) != nil { return free.remove(at: index) }
            }
            return nil
        }
        return reused ?? ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Gives a buffer back; when `keep` are kept already, the oldest is dropped.
    public func give(_ buffer: ByteBuffer) {
        guard buffer.capacity >= capacity else { return }
        free.withLock { free in
            if free.count == keep { free.removeFirst() }
            free.append(buffer)
        }
    }
}
