public import CoffreModel
import Foundation
public import NodeClient
import Synchronization

/// The storage nodes a coordinator knows, and what it last heard from each.
///
/// A node is down when no health answer came for `downAfter`. Health is polled by
/// `refresh()`; a coordinator calls it on a timer, tests call it directly.
public final class ClusterTopology: Sendable {
    /// A node as configured: identity, labels, address.
    public struct Member: Hashable, Sendable, Codable {
        public let id: NodeID
        public let country: Country
        public let region: String
        /// "https://127.0.0.1:7001"
        public let url: String

        public init(id: NodeID, country: Country, region: String, url: String) {
            self.id = id
            self.country = country
            self.region = region
            self.url = url
        }
    }

    struct Observation {
        /// On the monotonic clock.
        var lastSeen: Duration?
        /// The same moment in milliseconds since 1970: what is shared with other coordinators.
        var lastSeenWall: Int64?
        var capacityBytes: Int64 = 0
        var usedBytes: Int64 = 0
        /// The node's store incarnation as it last reported it.
        var incarnation: String?
        /// Bytes of copies moved off the node and not yet deleted by the collector: garbage the
        /// node still counts as used, which placement and the rebalancer do not.
        var awaitingCollection: Int64 = 0
    }

    /// Every node known: from the configuration, and announced since (`update`).
    public var members: [Member] {
        let removed = removedNodes.withLock { $0 }
        return memberList.withLock { $0 }.filter { !removed.contains($0.id) }
    }
    private let memberList: Mutex<[Member]>
    public let downAfter: Duration
    let client: any ShardTransport
    public let clock: WorkClock
    private let observations: Mutex<[NodeID: Observation]>
    /// Countries the leader quarantined: nothing new is placed there.
    private let quarantine = Mutex<Set<Country>>([])
    /// The incarnation of each node's store that the manifests' placements refer to
    /// (`Keyspace.disk`), as the leader recorded it.
    private let trusted = Mutex<[NodeID: String]>([:])
    /// Nodes being drained: nothing new is placed on them.
    private let drainingNodes = Mutex<Set<NodeID>>([])
    /// Nodes an operator removed (`Keyspace.removed`): no longer members, whatever the
    /// configuration lists.
    private let removedNodes = Mutex<Set<NodeID>>([])
    /// Nodes whose health probe is out.
    private let probing = Mutex<Set<NodeID>>([])

    public init(members: [Member], client: any ShardTransport, downAfter: Duration = .seconds(10), clock: WorkClock = .system) {
        memberList = Mutex(members)
        self.clock = clock
        self.client = client
        self.downAfter = downAfter
        observations = Mutex(Dictionary(uniqueKeysWithValues: members.map { ($0.id, Observation()) }))
    }

    public func member(_ id: NodeID) -> Member? {
        guard !removedNodes.withLock({ $0.contains(id) }) else { return nil }
        return memberList.withLock { list in list.first { $0.id == id } }
    }

    public func setRemoved(_ nodes: Set<NodeID>) { removedNodes.withLock { $0 = nodes } }
    public var removed: Set<NodeID> { removedNodes.withLock { $0 } }

    /// Adds new members and updates known ones (a node that moved to a new address); never
    /// removes one (a node leaves by being drained, not by being forgotten).
    public func update(_ members: [Member]) {
        memberList.withLock { list in
            for member in members {
                if let index = list.firstIndex(where: { $0.id == member.id }) {
                    list[index] = member
                } else {
                    list.append(member)
                }
            }
        }
        observations.withLock { observations in
            for member in members where observations[member.id] == nil { observations[member.id] = Observation() }
        }
    }

    /// Polls every node's health at once; returns how many answered. A node whose probe from
    /// an earlier round is still out (a node that holds requests) is not asked again: rounds
    /// may overlap (`HealthMonitor`), so one such node never holds up the others' polls.
    @discardableResult
    public func refresh() async -> Int {
        let members = probing.withLock { probing in
            let idle = self.members.filter { !probing.contains($0.id) }
            probing.formUnion(idle.map(\.id))
            return idle
        }
        return await withTaskGroup(of: (NodeID, NodeHealthSnapshot?).self) { group in
            for member in members {
                group.addTask { [self] in
                    defer { probing.withLock { _ = $0.remove(member.id) } }
                    let health = try? await client.health(base: member.url)
                    return (member.id, health.map { NodeHealthSnapshot(capacity: $0.capacityBytes, used: $0.usedBytes, incarnation: $0.incarnation) })
                }
            }
            var answered = 0
            for await (id, health) in group {
                guard let health else { continue }
                answered += 1
                observations.withLock {
                    $0[id]?.lastSeen = clock.monotonic()
                    $0[id]?.lastSeenWall = clock.wallMillis()
                    $0[id]?.capacityBytes = health.capacity
                    $0[id]?.usedBytes = health.used
                    $0[id]?.incarnation = health.incarnation
                }
            }
            return answered
        }
    }

    /// When this coordinator last heard from each node (milliseconds since 1970): what it
    /// publishes for the others (`Keyspace.observations`).
    public func lastSeen() -> [NodeID: Int64] {
        observations.withLock { $0.compactMapValues(\.lastSeenWall) }
    }

    /// Marks a node as not answering now (a failed write or read says so before the poll).
    public func reportFailure(_ id: NodeID) {
        observations.withLock { $0[id]?.lastSeen = nil }
    }

    /// Counts a shard moved from one node to another: the target's use grows until its next
    /// health answer says so itself; the source's copy is garbage until the collector deletes
    /// it (`collected`), and is not counted as used meanwhile.
    public func recordMove(bytes: Int64, from source: NodeID, to target: NodeID) {
        observations.withLock { observations in
            observations[target]?.usedBytes += bytes
            observations[source]?.awaitingCollection += bytes
        }
    }

    /// The collector deleted `bytes` of garbage from a node.
    public func collected(bytes: Int64, from id: NodeID) {
        observations.withLock { observations in
            if let waiting = observations[id]?.awaitingCollection { observations[id]?.awaitingCollection = max(0, waiting - bytes) }
        }
    }

    /// Marks a node as out of space now (it refused a write as full): placement passes it
    /// over until its next health answer says otherwise.
    public func reportFull(_ id: NodeID) {
        observations.withLock { observations in
            if let capacity = observations[id]?.capacityBytes { observations[id]?.usedBytes = capacity }
        }
    }

    /// Whether a node answered within `downAfter` and has not failed since.
    public func isUp(_ id: NodeID) -> Bool {
        let now = clock.monotonic()
        return observations.withLock { $0[id]?.lastSeen.map { now - $0 < downAfter } ?? false }
    }

    /// Sets the countries where nothing new may be placed (from the leader's decisions).
    public func setQuarantined(_ countries: Set<Country>) { quarantine.withLock { $0 = countries } }

    public var quarantined: Set<Country> { quarantine.withLock { $0 } }

    /// Sets the store incarnations the placements refer to (from `Keyspace.disks`).
    public func setTrusted(_ disks: [NodeID: String]) { trusted.withLock { $0 = disks } }

    /// Each node's store incarnation as it last reported it.
    public func incarnations() -> [NodeID: String] { observations.withLock { $0.compactMapValues(\.incarnation) } }

    /// Nodes that answer with another store than the one their placements refer to: a disk
    /// replaced or wiped. Their old shards are gone; repair rebuilds them elsewhere, and
    /// nothing new goes there until the leader trusts the new store.
    public func replacedNodes() -> Set<NodeID> {
        let trusted = self.trusted.withLock { $0 }
        return Set(incarnations().filter { node, live in trusted[node].map { $0 != live } ?? false }.keys)
    }

    /// Sets the nodes being drained (from `Keyspace.drains`).
    public func setDraining(_ nodes: Set<NodeID>) { drainingNodes.withLock { $0 = nodes } }

    public var draining: Set<NodeID> { drainingNodes.withLock { $0 } }

    /// What placement of new shards may use: as `descriptors`, with the nodes of
    /// quarantined countries, nodes with a replaced store and nodes being drained counted as
    /// down.
    public func placementDescriptors() -> [NodeDescriptor] {
        let excluded = quarantined
        let replaced = replacedNodes().union(draining)
        return descriptors().map { node in
            var node = node
            if excluded.contains(node.country) || replaced.contains(node.id) { node.isUp = false }
            return node
        }
    }

    /// What placement needs: every member, with up/down and space as last seen.
    public func descriptors() -> [NodeDescriptor] {
        let now = clock.monotonic()
        let members = self.members
        return observations.withLock { observations in
            members.map { member in
                let seen = observations[member.id] ?? Observation()
                let up = seen.lastSeen.map { now - $0 < downAfter } ?? false
                return NodeDescriptor(
                    id: member.id, country: member.country, region: member.region,
                    capacityBytes: seen.capacityBytes, usedBytes: max(0, seen.usedBytes - seen.awaitingCollection), isUp: up)
            }
        }
    }
}

struct NodeHealthSnapshot: Sendable {
    let capacity: Int64
    let used: Int64
    let incarnation: String?
}
