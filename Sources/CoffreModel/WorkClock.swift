import Foundation

/// Time as the coordinator's background work reads it, passed in rather than read from the
/// system, so that a seeded simulation can run hours of faults in seconds and replay them.
///
/// - `wallMillis`: milliseconds since 1970, the time other processes share (shard creation
///   times, published observations, lease records);
/// - `monotonic`: a reading that never goes back, from an arbitrary origin, for intervals
///   (liveness windows, pacing, publication rates);
/// - `sleep`: waits that long (a simulation advances its clock instead).
public struct WorkClock: Sendable {
    public let wallMillis: @Sendable () -> Int64
    public let monotonic: @Sendable () -> Duration
    public let sleep: @Sendable (Duration) async -> Void

    public init(
        wallMillis: @escaping @Sendable () -> Int64, monotonic: @escaping @Sendable () -> Duration,
        sleep: @escaping @Sendable (Duration) async -> Void
    ) {
        self.wallMillis = wallMillis
        self.monotonic = monotonic
        self.sleep = sleep
    }

    private static let origin = ContinuousClock.now

    /// The system's clocks, and `Task.sleep` (which ends early when the task is cancelled).
    public static let system = WorkClock(
        wallMillis: { Int64(Date().timeIntervalSince1970 * 1000) }, monotonic: { ContinuousClock.now - origin },
        sleep: { try? await Task.sleep(for: $0) })

    /// The system's clocks moved forward by `offset()`: tests that need minutes to pass at once.
    public static func skewed(by offset: @escaping @Sendable () -> Duration) -> WorkClock {
        WorkClock(
            wallMillis: { system.wallMillis() + Int64(offset() / .milliseconds(1)) }, monotonic: { system.monotonic() + offset() },
            sleep: system.sleep)
    }
}

extension Duration {
    /// Whole nanoseconds.
    public var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
