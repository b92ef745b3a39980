import CoffreModel
import Foundation

/// The watch side of a store that keeps its own history (the embedded and in-memory
/// backends): the last `Limits.metadataHistoryMax` events and the open watches. Not
/// thread-safe: it lives in the store's locked state.
struct WatchHub {
    private struct Watcher {
        let prefix: String
        let continuation: AsyncThrowingStream<MetadataEvent, any Error>.Continuation
    }

    private var history: [MetadataEvent] = []
    private var watchers: [UUID: Watcher] = [:]

    /// Registers a watch of `prefix`, first replaying the kept history from `revision` (or
    /// ending it with `compacted` when that is older than the history kept).
    mutating func add(
        _ id: UUID, prefix: String, from revision: Int64?, current: Int64,
        _ continuation: AsyncThrowingStream<MetadataEvent, any Error>.Continuation
    ) {
        if let revision {
            let oldest = history.first?.revision ?? (current + 1)
            if revision < oldest && revision <= current {
                continuation.finish(throwing: MetadataError(.compacted, "revision \(revision) is older than the kept history (from \(oldest))"))
                return
            }
            for event in history where event.revision >= revision && event.key.hasPrefix(prefix) { continuation.yield(event) }
        }
        watchers[id] = Watcher(prefix: prefix, continuation: continuation)
    }

    mutating func remove(_ id: UUID) { watchers[id] = nil }

    /// A watch stream: `register` adds it under a fresh id, `onEnd` removes it when the
    /// watcher stops reading.
    static func stream(
        register: (UUID, AsyncThrowingStream<MetadataEvent, any Error>.Continuation) -> Void,
        onEnd: @escaping @Sendable (UUID) -> Void
    ) -> AsyncThrowingStream<MetadataEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<MetadataEvent, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(Limits.metadataWatchBufferMax))
        let id = UUID()
        register(id, continuation)
        continuation.onTermination = { _ in onEnd(id) }
        return stream
    }

    /// Records committed events and sends them to the watches of their prefix; a watch that
    /// fell too far behind ends with `limitExceeded`.
    mutating func publish(_ events: [MetadataEvent]) {
        history += events
        if history.count > Limits.metadataHistoryMax { history.removeFirst(history.count - Limits.metadataHistoryMax) }
        for event in events {
            for watcher in watchers.values where event.key.hasPrefix(watcher.prefix) {
                if case .dropped = watcher.continuation.yield(event) {
                    watcher.continuation.finish(throwing: MetadataError(.limitExceeded, "watcher fell \(Limits.metadataWatchBufferMax) events behind"))
                }
            }
        }
    }
}
