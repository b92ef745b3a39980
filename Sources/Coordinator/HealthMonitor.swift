public import CoffreAPI
public import CoffreModel
import Foundation
public import Logging
public import Metadata
public import ServiceLifecycle
import Synchronization

/// One coordinator's view of the storage nodes, as it publishes it for the others.
public struct NodeObservations: Codable, Hashable, Sendable {
    public let coordinator: String
    /// The coordinator's country (absent from views written before it was recorded).
    public var country: String?
    /// Milliseconds since 1970 when written.
    public let writtenAt: Int64
    /// When this coordinator last heard from each node.
    public let lastSeen: [String: Int64]
}

/// Polls every storage node's health every `down_after / 6` and publishes what it saw under
/// `Keyspace.observations(id)`, so that the leader decides liveness from every
/// coordinator's view merged: a node is down only when no coordinator has heard from it
/// for `down_after`. A coordinator that dies or is cut off stops publishing, and its old
/// view counts for nothing once it is older than `down_after`; one flaky link does not
/// condemn a node that others still reach.
public final class HealthMonitor: Service, Sendable {
    let coordinator: String
    let topology: ClusterTopology
    let metadata: any MetadataStore
    let logger: Logger
    let country: String?
    /// Called after every poll: the coordinator follows cluster-wide settings from the
    /// metadata store (a drill's fault on itself, the erasure scheme to write).
    let onPoll: (@Sendable () async -> Void)?
    /// The countries' states as the leader last published them, read at every poll.
    private let publishedCountries = Mutex<CountryList?>(nil)

    /// The countries' states as the leader last published them (nil before the first poll
    /// that read them).
    public func countries() -> CountryList? { publishedCountries.withLock { $0 } }

    public init(
        coordinator: String, country: String? = nil, topology: ClusterTopology, metadata: any MetadataStore, logger: Logger,
        onPoll: (@Sendable () async -> Void)? = nil
    ) {
        self.coordinator = coordinator
        self.country = country
        self.topology = topology
        self.metadata = metadata
        self.logger = logger
        self.onPoll = onPoll
    }

    public func run() async throws {
        // Six polls per down_after: a node's silence is seen at most a sixth of it late. A
        // round starts on time even when earlier ones wait on a node that holds requests (at
        // most `Limits.healthRoundsInFlightMax` at once); that node is not asked again until it
        // answers or its probe times out (`ClusterTopology.refresh`).
        let interval = Duration.milliseconds(max(250, Int(topology.downAfter.components.seconds) * 1000 / 6))
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                if inFlight >= Limits.healthRoundsInFlightMax {
                    await group.next()
                    inFlight -= 1
                }
                group.addTask { await self.step() }
                inFlight += 1
                await topology.clock.sleep(interval)
            }
            group.cancelAll()
        }
    }

    /// One poll and one publication.
    public func step() async {
        do {
            try await loadMembers()
            try await loadDisks()
        } catch {
            logger.warning("cannot read the membership", metadata: ["error": "\(error)"])
        }
        await topology.refresh()
        let view = NodeObservations(
            coordinator: coordinator, country: country, writtenAt: topology.clock.wallMillis(),
            lastSeen: Dictionary(uniqueKeysWithValues: topology.lastSeen().map { ($0.key.value, $0.value) }))
        do {
            try await metadata.put(Keyspace.observations(coordinator), Array(try JSONEncoder().encode(view)))
            // The leader's country decisions: quarantined countries get no new shards.
            if let entry = try await metadata.get(Keyspace.countryStates),
                let list = try? JSONDecoder().decode(CountryList.self, from: Data(entry.value))
            {
                publishedCountries.withLock { $0 = list }
                let quarantined = list.countries.filter { $0.state == "quarantined" || $0.state == "evacuated" }
                topology.setQuarantined(Set(quarantined.compactMap { try? Country($0.country) }))
            }
        } catch {
            logger.warning("cannot publish node observations", metadata: ["error": "\(error)"])
        }
        await onPoll?()
    }

    /// The store incarnations placements refer to, as the leader recorded them, and the
    /// nodes being drained.
    func loadDisks() async throws(MetadataError) {
        topology.setTrusted(try await Self.trustedDisks(metadata))
        topology.setDraining(Set(try await metadata.byNode(Keyspace.drains).keys))
        topology.setRemoved(Set(try await metadata.byNode(Keyspace.removedAll).keys))
    }

    /// `Keyspace.disks`: node -> the incarnation of its store that placements refer to.
    static func trustedDisks(_ metadata: any MetadataStore) async throws(MetadataError) -> [NodeID: String] {
        try await metadata.byNode(Keyspace.disks).mapValues { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Every coordinator's view merged: the latest time any coordinator heard from each node.
    public static func merged(_ metadata: any MetadataStore) async throws(MetadataError) -> [NodeID: Int64] {
        var latest: [NodeID: Int64] = [:]
        for entry in try await metadata.list(prefix: Keyspace.observationsAll) {
            guard let view = try? JSONDecoder().decode(NodeObservations.self, from: Data(entry.value)) else { continue }
            for (node, seen) in view.lastSeen {
                guard let id = try? NodeID(node) else { continue }
                latest[id] = max(latest[id] ?? 0, seen)
            }
        }
        return latest
    }
}
