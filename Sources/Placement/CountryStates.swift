public import CoffreModel

/// A country's state, as the leader decides it from its nodes' liveness.
///
/// - `up`: serving normally;
/// - `down`: at least `downFraction` of its nodes are down: reads and writes go on without it;
/// - `quarantined`: down for `quarantineAfter`: no new placement there, and repair restores
///   redundancy in the other countries;
/// - `evacuated`: quarantined, and no shard of any segment is left on its down nodes: every
///   segment has k + m healthy shards elsewhere.
///
/// Any state goes back to `up` when enough of its nodes answer again.
public enum CountryState: String, Codable, Hashable, Sendable, CaseIterable {
    case up, down, quarantined, evacuated
}

/// The country state machine: pure, time as an argument (milliseconds since 1970).
public struct CountryStates: Sendable {
    public struct Entry: Hashable, Sendable, Codable {
        public var state: CountryState
        public var since: Int64
        /// When the country last went down (kept through quarantine and evacuation).
        public var downSince: Int64?
    }

    /// Fraction of a country's nodes that must be down for the country to be down.
    public let downFraction: Double
    /// Milliseconds down before quarantine.
    public let quarantineAfter: Int64
    public private(set) var entries: [Country: Entry] = [:]

    public init(downFraction: Double = 0.5, quarantineAfter: Int64) {
        precondition(downFraction > 0 && downFraction <= 1 && quarantineAfter >= 0)
        self.downFraction = downFraction
        self.quarantineAfter = quarantineAfter
    }

    /// A change of state.
    public struct Transition: Hashable, Sendable {
        public let country: Country
        public let from: CountryState
        public let to: CountryState
    }

    /// Takes each country's nodes (up or not) and the countries whose down nodes hold no
    /// shard any more; returns the transitions, sorted by country.
    public mutating func observe(nodes: [Country: (up: Int, total: Int)], emptied: Set<Country>, now: Int64) -> [Transition] {
        var transitions: [Transition] = []
        for (country, count) in nodes.sorted(by: { $0.key < $1.key }) {
            var entry = entries[country] ?? Entry(state: .up, since: now, downSince: nil)
            let before = entry.state
            let isDown = count.total > 0 && Double(count.total - count.up) >= downFraction * Double(count.total)
            switch (entry.state, isDown) {
            case (.up, true):
                entry = Entry(state: .down, since: now, downSince: now)
            case (.down, true) where now - (entry.downSince ?? now) >= quarantineAfter:
                entry = Entry(state: .quarantined, since: now, downSince: entry.downSince)
            case (.quarantined, true) where emptied.contains(country):
                entry = Entry(state: .evacuated, since: now, downSince: entry.downSince)
            case (.evacuated, true) where !emptied.contains(country):
                // Something landed on its nodes' index again (a stale view): back a step.
                entry = Entry(state: .quarantined, since: now, downSince: entry.downSince)
            case (.down, false), (.quarantined, false), (.evacuated, false):
                entry = Entry(state: .up, since: now, downSince: nil)
            default:
                break
            }
            entries[country] = entry
            if entry.state != before { transitions.append(Transition(country: country, from: before, to: entry.state)) }
        }
        return transitions
    }

    /// Countries where nothing new may be placed.
    public var quarantined: Set<Country> {
        Set(entries.filter { $0.value.state == .quarantined || $0.value.state == .evacuated }.keys)
    }
}
