import CoffreModel
import Foundation
import Metadata

/// Where a leader's pass over every node stands (the collector's, the scrub schedule's): the
/// node being walked, a page at a time, and how many passes are complete. A value: the
/// services keep it under their lock and step it.
struct NodeWalk: Sendable {
    private(set) var nodeIndex = 0
    /// The page to ask for next on the current node (nil: its first).
    private(set) var cursor: String?
    private(set) var passesCompleted = 0

    /// The node to walk now; `requested` (an operator's wish) goes next, and the pass goes on
    /// from there.
    mutating func current(of members: [ClusterTopology.Member], requested: NodeID? = nil) -> ClusterTopology.Member {
        if let requested, let index = members.firstIndex(where: { $0.id == requested }) {
            nodeIndex = nodeIndex - nodeIndex % members.count + index
        }
        return members[nodeIndex % members.count]
    }

    /// After a page: on to `next` on this node, or to the next node when there is none.
    mutating func paged(next: String?, members count: Int) {
        if let next { cursor = next } else { skip(members: count) }
    }

    /// On to the next node (this one is done, down or failing).
    mutating func skip(members count: Int) {
        cursor = nil
        nodeIndex += 1
        if nodeIndex % count == 0 { passesCompleted += 1 }
    }
}

/// When a leader's service last published its status: at most once per interval.
struct PublishThrottle: Sendable {
    private var last: Duration?

    /// True (and counted as published) when `interval` has passed since the last time.
    mutating func take(now: Duration, interval: Duration = .seconds(1)) -> Bool {
        if let last, now - last < interval { return false }
        last = now
        return true
    }
}

extension MetadataMutation {
    /// A put of `value` as JSON (keys sorted: the same value, the same bytes).
    static func putJSON(_ key: String, _ value: some Encodable) -> MetadataMutation {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return .put(key, Array(try! encoder.encode(value)))
    }
}
