public import CoffreModel

/// Where a segment's shards may go: the erasure policy plus country constraints.
///
/// The rule that matters (Docs/architecture.md, "Placement"): at most `m - margin` shards of a
/// segment in one country, so losing any one country leaves at least `k + margin` shards. While
/// m < k, no single country then holds enough shards to rebuild a segment, even with the key.
public struct PlacementPolicy: Hashable, Sendable, Codable {
    public let erasure: ErasurePolicy
    /// Extra safety: shards beyond k that must survive the loss of any one country.
    public let margin: Int
    /// Countries that hold no shard at all (jurisdictions the operator or user refuses).
    public let excludedCountries: Set<Country>

    public init(erasure: ErasurePolicy, margin: Int = 0, excludedCountries: Set<Country> = []) throws(ModelError) {
        guard margin >= 0, erasure.parityShards - margin >= 1 else {
            throw ModelError(
                .invalidArgument,
                "placement needs m - margin >= 1 shard per country: \(erasure) with margin \(margin)")
        }
        self.erasure = erasure
        self.margin = margin
        self.excludedCountries = excludedCountries
    }

    /// The same constraints with `countries` excluded too (an owner's own exclusions).
    public func excluding(_ countries: Set<Country>) -> PlacementPolicy {
        guard !countries.isSubset(of: excludedCountries) else { return self }
        return (try? PlacementPolicy(erasure: erasure, margin: margin, excludedCountries: excludedCountries.union(countries))) ?? self
    }

    /// The same constraints for segments of another erasure scheme (those not yet re-encoded
    /// after a policy change): the margin is kept where that scheme allows it.
    public func forSegments(of other: ErasurePolicy) -> PlacementPolicy {
        guard other != erasure else { return self }
        return (try? PlacementPolicy(erasure: other, margin: max(0, min(margin, other.parityShards - 1)), excludedCountries: excludedCountries)) ?? self
    }

    /// Most shards of one segment allowed in one country.
    public var shardsPerCountryMax: Int { erasure.parityShards - margin }
}
