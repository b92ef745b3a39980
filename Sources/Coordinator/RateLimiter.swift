public import CoffreModel

/// Token buckets by key (an account's name, a source address): each holds up to `burst`
/// attempts and gains `perMinute` a minute. Pure: time is an argument, so tests drive it.
/// Bounded: at `keysMax` keys, full buckets (nobody near the limit) are forgotten first.
public struct RateLimiter: Sendable {
    public struct Rule: Sendable, Hashable {
        public var burst: Double
        public var perMinute: Double
        public init(burst: Double, perMinute: Double) {
            self.burst = burst
            self.perMinute = perMinute
        }
    }

    struct Bucket: Sendable {
        var tokens: Double
        var at: Int64
        var rule: Rule
    }

    let keysMax: Int
    var buckets: [String: Bucket] = [:]

    public init(keysMax: Int = Limits.rateLimitKeysMax) {
        self.keysMax = keysMax
    }

    /// Takes one attempt for `key` at `now` (milliseconds): nil when allowed, else the seconds
    /// to wait before the next one is.
    public mutating func take(_ key: String, _ rule: Rule, now: Int64) -> Int? {
        var bucket = refilled(buckets[key] ?? Bucket(tokens: rule.burst, at: now, rule: rule), now: now)
        guard bucket.tokens >= 1 - 1e-9 else {
            buckets[key] = bucket
            return max(1, Int(((1 - bucket.tokens) * 60 / rule.perMinute).rounded(.up)))
        }
        bucket.tokens -= 1
        if buckets[key] == nil, buckets.count >= keysMax { forgetFull(now: now) }
        buckets[key] = bucket
        return nil
    }

    private func refilled(_ bucket: Bucket, now: Int64) -> Bucket {
        let gained = Double(max(0, now - bucket.at)) / 60_000 * bucket.rule.perMinute
        return Bucket(tokens: min(bucket.rule.burst, bucket.tokens + gained), at: now, rule: bucket.rule)
    }

    private mutating func forgetFull(now: Int64) {
        buckets = buckets.filter { refilled($0.value, now: now).tokens < $0.value.rule.burst }
        if buckets.count >= keysMax { buckets.removeAll(keepingCapacity: true) }
    }
}
