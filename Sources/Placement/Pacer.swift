/// Paces background work to a budget in bytes per second: a token bucket.
///
/// Garage's `Tranquilizer` paces by the time each step took; a byte budget is what an
/// operator reasons about ("repair may use 300 MB/s"), so this paces by bytes. Time is an
/// argument (nanoseconds of a monotonic clock); the worker sleeps for what `spend` returns.
public struct Pacer: Sendable {
    /// The budget; zero or less pauses the work (every spend waits a second and re-checks).
    public private(set) var bytesPerSecond: Int64
    /// Bytes that may go at once after a quiet spell.
    public private(set) var burstBytes: Int64
    private var available: Double
    private var last: Int64?

    /// - Parameter burstBytes: nil for one second's worth of the budget (at least 1 MiB, at
    ///   most 64 MiB), so that a low budget is not spent in one burst.
    public init(bytesPerSecond: Int64, burstBytes: Int64? = nil) {
        self.bytesPerSecond = bytesPerSecond
        self.burstBytes = burstBytes ?? Self.burst(for: bytesPerSecond)
        fixedBurst = burstBytes != nil
        precondition(self.burstBytes > 0)
        available = Double(self.burstBytes)
    }

    private let fixedBurst: Bool

    static func burst(for bytesPerSecond: Int64) -> Int64 { min(64 << 20, max(1 << 20, bytesPerSecond)) }

    /// Changes the budget from now on.
    public mutating func setBudget(_ bytesPerSecond: Int64, now: Int64) {
        refill(now: now)
        self.bytesPerSecond = bytesPerSecond
        if !fixedBurst {
            burstBytes = Self.burst(for: bytesPerSecond)
            available = min(available, Double(burstBytes))
        }
    }

    /// Takes `bytes` from the budget; returns the nanoseconds to wait before going on (zero
    /// when the budget had them).
    public mutating func spend(_ bytes: Int64, now: Int64) -> Int64 {
        precondition(bytes >= 0)
        guard bytesPerSecond > 0 else { return 1_000_000_000 }
        refill(now: now)
        available -= Double(bytes)
        guard available < 0 else { return 0 }
        return Int64((-available / Double(bytesPerSecond) * 1e9).rounded(.up))
    }

    private mutating func refill(now: Int64) {
        if let last, now > last, bytesPerSecond > 0 {
            available = min(Double(burstBytes), available + Double(now - last) / 1e9 * Double(bytesPerSecond))
        }
        last = max(last ?? now, now)
    }
}

/// Bytes per second over the last `window` nanoseconds, in one-second buckets: the rate a
/// status reports and an ETA divides by.
public struct RateMeter: Sendable {
    public let windowSeconds: Int
    private var buckets: [Int64: Int64] = [:]

    public init(windowSeconds: Int = 10) {
        precondition(windowSeconds > 0)
        self.windowSeconds = windowSeconds
    }

    public mutating func record(_ bytes: Int64, now: Int64) {
        let second = now / 1_000_000_000
        buckets[second, default: 0] += bytes
        buckets = buckets.filter { $0.key > second - Int64(windowSeconds) }
    }

    /// Average over the window ending at `now`.
    public func rate(now: Int64) -> Double {
        let second = now / 1_000_000_000
        let total = buckets.filter { $0.key > second - Int64(windowSeconds) }.values.reduce(0, +)
        return Double(total) / Double(windowSeconds)
    }
}
