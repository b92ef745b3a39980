public import CoffreAPI
public import CoffreModel
import Foundation
public import Logging
import Metadata
import Placement
public import ServiceLifecycle
import Synchronization

/// The leader's repair loop: the shell around `RepairPlanner`.
///
/// Each step is bounded: when a scan is due it merges the coordinators' observations,
/// tells the planner, and queues the segments with a shard on a lost node (found through
/// `Keyspace.placements`, never by scanning every manifest) or reported suspect; then it
/// repairs at most one segment, riskiest first, paced by the byte budget. It does nothing
/// on a coordinator that does not lead, and starts afresh in every new term.
///
/// Shape from Garage's `Worker` (a step, a status, a tranquilizer), run as a
/// swift-service-lifecycle `Service`.
public final class RepairWorker: Service, Sendable {
    public struct Settings: Sendable {
        /// A node is down when no coordinator heard from it for this long.
        public var downAfterMilliseconds: Int64
        /// A down node's shards are rebuilt elsewhere after this long.
        public var repairAfterMilliseconds: Int64
        /// Used until an operator sets one (`Keyspace.repairBudget`).
        public var budgetBytesPerSecond: Int64
        /// How often an idle leader scans again.
        public var scanInterval: Duration
        /// A country is down when this fraction of its nodes is, and quarantined after
        /// `quarantineAfterMilliseconds` down.
        public var countryDownFraction: Double
        public var quarantineAfterMilliseconds: Int64

        public init(
            downAfterMilliseconds: Int64, repairAfterMilliseconds: Int64, budgetBytesPerSecond: Int64, scanInterval: Duration = .seconds(1),
            countryDownFraction: Double = 0.5, quarantineAfterMilliseconds: Int64? = nil
        ) {
            self.countryDownFraction = countryDownFraction
            self.quarantineAfterMilliseconds = quarantineAfterMilliseconds ?? repairAfterMilliseconds
            self.downAfterMilliseconds = downAfterMilliseconds
            self.repairAfterMilliseconds = repairAfterMilliseconds
            self.budgetBytesPerSecond = budgetBytesPerSecond
            self.scanInterval = scanInterval
        }
    }

    struct State {
        var planner: RepairPlanner?
        var queue = RepairQueue()
        var pacer: Pacer
        var meter = RateMeter()
        var suspects: Set<ShardRef> = []
        var status: RepairStatus
        var lastScan: Duration?
        /// When the next down node becomes lost: a scan is due then, not a second later.
        var nextCondemnation: Duration?
        /// Lost or returned nodes changed since the last successful full scan.
        var rescanNeeded = false
        /// Segments being repaired now (counted as queued in the status).
        var inFlight: [RepairDirective] = []
        var published = PublishThrottle()
        var countries: CountryStates
        var countryCounts: [Country: (up: Int, total: Int)] = [:]
        /// Nodes answering with a store other than the one placements refer to, and since
        /// when (milliseconds since 1970) this leader has seen it.
        var replacedSince: [NodeID: Int64] = [:]
    }

    let objects: ObjectStore
    let election: LeaderElection
    let settings: Settings
    let logger: Logger
    private let state: Mutex<State>

    public init(objects: ObjectStore, election: LeaderElection, settings: Settings, logger: Logger) {
        self.objects = objects
        self.election = election
        self.settings = settings
        self.logger = logger
        state = Mutex(State(
            pacer: Pacer(bytesPerSecond: settings.budgetBytesPerSecond),
            status: RepairStatus(leader: nil, epoch: 0, budgetBytesPerSecond: settings.budgetBytesPerSecond, updatedAt: 0),
            countries: CountryStates(downFraction: settings.countryDownFraction, quarantineAfter: settings.quarantineAfterMilliseconds)))
    }

    var metadata: any MetadataStore { objects.metadata }
    var clock: WorkClock { objects.clock }
    /// The monotonic clock in nanoseconds, as the pacer and the meter count.
    private var nanoseconds: Int64 { clock.monotonic().nanoseconds }

    /// What this worker last did (meaningful on the leader).
    public func status() -> RepairStatus {
        let now = nanoseconds
        let wall = clock.wallMillis()
        return state.withLock { state in
            Self.refresh(&state, now: now, wall: wall)
            return state.status
        }
    }

    /// The status's derived fields, from the queue and the segments being repaired now.
    private static func refresh(_ state: inout State, now: Int64, wall: Int64) {
        let waiting = state.queue.entries + state.inFlight
        state.status.queuedSegments = waiting.count
        state.status.bytesLeft = waiting.reduce(0) { $0 + $1.bytes }
        state.status.segmentsUnrepairable = state.queue.entries.filter { !$0.isRepairable }.count
        state.status.mostAtRiskHealthyShards = waiting.map(\.healthy).min()
        state.status.rateBytesPerSecond = state.meter.rate(now: now)
        let rate = state.status.rateBytesPerSecond > 0 ? state.status.rateBytesPerSecond : Double(max(1, state.pacer.bytesPerSecond))
        state.status.etaSeconds = state.status.bytesLeft > 0 ? Double(state.status.bytesLeft) / rate : nil
        state.status.updatedAt = wall
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if await step() == false {
                let until = state.withLock { $0.nextCondemnation }.map { $0 - clock.monotonic() } ?? settings.scanInterval
                await clock.sleep(max(.milliseconds(20), min(settings.scanInterval, until)))
            }
        }
    }

    /// One bounded step; false when there was nothing to do.
    @discardableResult
    public func step() async -> Bool {
        guard let term = election.current else {
            state.withLock { $0.planner = nil; $0.queue.removeAll() }
            return false
        }
        let fresh = state.withLock { state in
            guard state.planner?.epoch != term.epoch else { return false }
            state.planner = RepairPlanner(policy: objects.policy, repairAfter: settings.repairAfterMilliseconds, epoch: term.epoch)
            state.queue.removeAll()
            state.countries = CountryStates(downFraction: settings.countryDownFraction, quarantineAfter: settings.quarantineAfterMilliseconds)
            state.status = RepairStatus(
                leader: term.coordinator, epoch: term.epoch, budgetBytesPerSecond: state.pacer.bytesPerSecond, updatedAt: 0)
            state.lastScan = nil
            return true
        }
        if fresh { logger.notice("repair starts", metadata: ["leader.epoch": "\(term.epoch)"]) }
        let now = clock.monotonic()
        let due = state.withLock { state in
            (state.lastScan.map { now - $0 >= settings.scanInterval } ?? true) || (state.nextCondemnation.map { now >= $0 } ?? false)
        }
        if due {
            do { try await scan(term) } catch {
                state.withLock { $0.status.lastError = error.message }
                logger.warning("repair scan failed", metadata: ["error": "\(error.message)"])
            }
            state.withLock { $0.lastScan = now }
        }
        // Up to `Limits.repairSegmentsInFlightMax` segments at once: one segment's reads and
        // writes leave the nodes idle between round trips.
        let directives = state.withLock { state in
            // A budget of zero pauses repair: nothing is taken from the queue.
            guard state.pacer.bytesPerSecond > 0 else { return [RepairDirective]() }
            var taken: [RepairDirective] = []
            while taken.count < Limits.repairSegmentsInFlightMax, let next = state.queue.popRepairable() { taken.append(next) }
            state.inFlight = taken.filter { $0.epoch == term.epoch }
            return state.inFlight
        }

        // Other coordinators see the work in hand while it is paced and carried out.
        if !directives.isEmpty { await publish(term, force: true) }
        // Segments of one object share a manifest: they are repaired together, one swap.
        let byObject = Dictionary(grouping: directives, by: \.objectId)
        await withTaskGroup(of: Void.self) { group in
            for objectId in byObject.keys.sorted() { group.addTask { await self.carryOut(byObject[objectId]!, term) } }
        }
        state.withLock { $0.inFlight = [] }
        await publish(term, force: directives.isEmpty)
        return !directives.isEmpty
    }

    // MARK: - Scan

    /// Merges liveness, tells the planner, and queues every segment with a lost shard.
    private func scan(_ term: LeaderTerm) async throws(CoordinatorError) {
        let nowMs = clock.wallMillis()
        let seen: [NodeID: Int64]
        do { seen = try await HealthMonitor.merged(metadata) } catch { throw CoordinatorError(error.code, error.message) }
        var up: [NodeID: Bool] = [:]
        var down: [NodeID: Int64?] = [:]
        for member in objects.topology.members {
            let last = seen[member.id]
            let isUp = last.map { nowMs - $0 < settings.downAfterMilliseconds } ?? false
            up[member.id] = isUp
            // Down since its last news plus down_after (never heard of: since now).
            down[member.id] = isUp ? Int64?.none : (last.map { $0 + settings.downAfterMilliseconds } ?? nowMs)
        }
        await readBudget()
        let suspects = try await readSuspects()
        let replaced = try await reconcileStores(term, now: nowMs)
        let (events, planner) = state.withLock { state in
            let events = state.planner!.observe(down: down, now: nowMs) + state.planner!.observe(replaced: replaced)
            state.suspects = suspects
            return (events, state.planner!)
        }
        try await observeCountries(up: up, planner: planner, now: nowMs)
        for event in events {
            switch event {
            case .down(let node): logger.warning("node down", metadata: ["node.id": "\(node)"])
            case .condemned(let node): logger.warning("node lost: its shards are rebuilt elsewhere", metadata: ["node.id": "\(node)"])
            case .returned(let node): logger.notice("node back", metadata: ["node.id": "\(node)"])
            case .replaced(let node):
                logger.warning("node back with another store: its shards are rebuilt elsewhere", metadata: ["node.id": "\(node)"])
            case .rejoined(let node): logger.notice("node takes new shards on its new store", metadata: ["node.id": "\(node)"])
            }
        }
        state.withLock { state in
            let pending = planner.downSince.filter { !planner.condemned.contains($0.key) }.values
            let monotonic = clock.monotonic()
            state.nextCondemnation = pending.min().map { monotonic + .milliseconds(max(0, $0 + settings.repairAfterMilliseconds - nowMs)) }
            state.status.downNodes = planner.downSince.keys.map(\.value).sorted()
            state.status.lostNodes = planner.condemned.map(\.value).sorted()
            state.status.replacedNodes = planner.replaced.map(\.value).sorted()
        }
        // A full scan when nothing queued can be done now (empty, or only segments waiting
        // for nodes), or when the set of lost or returned nodes changed since the last full
        // scan (kept until a scan succeeds, so a failed one is not forgotten).
        let full = state.withLock { state in
            if !events.isEmpty { state.rescanNeeded = true }
            return state.rescanNeeded || !state.queue.entries.contains(where: \.isRepairable)
        }
        guard full else { return }
        var objectIds = Set(suspects.map(\.objectId))
        // Object -> the index entries that sent the scan there.
        var placed: [String: [MetadataEntry]] = [:]
        for node in planner.lost.sorted() {
            for (objectId, entry) in try await metadata.objectsPlaced(on: node, limit: Limits.repairQueueMax - objectIds.count) {
                objectIds.insert(objectId)
                placed[objectId, default: []].append(entry)
            }
        }
        let descriptors = objects.topology.descriptors().map { node in
            var node = node
            node.isUp = up[node.id] ?? false
            return node
        }
        var queue = RepairQueue()
        for objectId in objectIds.sorted() {
            let manifest: ObjectManifest
            do {
                manifest = try await objects.manifest(objectId)
            } catch {
                guard error.code == .notFound else { throw error }
                await clearSuspects(suspects.filter { $0.objectId == objectId })
                await dropStalePlacements(placed[objectId] ?? [], of: objectId, manifest: nil, term, now: nowMs)
                continue
            }
            await dropStalePlacements(placed[objectId] ?? [], of: objectId, manifest: manifest, term, now: nowMs)
            // Reports about copies the manifest no longer places there are stale.
            await clearSuspects(suspects.filter { ref in
                ref.objectId == objectId
                    && manifest.segments.first { $0.index == ref.segment }?.shards.first { $0.index == ref.shard }?.node != ref.node
            })
            for directive in planner.plan(manifest, nodes: descriptors, suspects: suspects) { queue.insert(directive) }
        }
        // The queue is planned afresh: entries of segments repaired or healed meanwhile go.
        state.withLock { state in
            state.queue = queue
            state.rescanNeeded = false
        }
    }

    /// Feeds the country state machine: node counts per country, and which quarantined
    /// countries' down nodes hold no shard any more.
    private func observeCountries(up: [NodeID: Bool], planner: RepairPlanner, now: Int64) async throws(CoordinatorError) {
        var counts: [Country: (up: Int, total: Int)] = [:]
        for member in objects.topology.members {
            let current = counts[member.country] ?? (0, 0)
            counts[member.country] = (current.up + (up[member.id] == true ? 1 : 0), current.total + 1)
        }
        var emptied = Set<Country>()
        let quarantined = state.withLock { $0.countries.quarantined }
        for country in quarantined {
            var empty = true
            for member in objects.topology.members where member.country == country && up[member.id] != true {
                if !(try await metadata.objectsPlaced(on: member.id, limit: 1)).isEmpty { empty = false }
            }
            if empty { emptied.insert(country) }
        }
        let transitions = state.withLock { state in
            state.countryCounts = counts
            return state.countries.observe(nodes: counts, emptied: emptied, now: now)
        }
        for transition in transitions {
            logger.warning("country \(transition.to.rawValue)", metadata: [
                "node.country": "\(transition.country)", "country.from": "\(transition.from.rawValue)",
            ])
        }
    }

    /// Each country's state, nodes and queued segments at risk (a lost shard there).
    public func countryReports() -> [CountryReport] {
        state.withLock { state in
            let countryOf = Dictionary(uniqueKeysWithValues: objects.topology.members.map { ($0.id, $0.country) })
            return state.countryCounts.keys.sorted().map { country in
                let entry = state.countries.entries[country]
                let counts = state.countryCounts[country] ?? (0, 0)
                let atRisk = state.queue.entries.filter { $0.lostNodes.contains { countryOf[$0] == country } }.count
                return CountryReport(
                    country: country.code, state: (entry?.state ?? .up).rawValue, since: entry?.since ?? 0, nodesUp: counts.up,
                    nodesDown: counts.total - counts.up, segmentsAtRisk: atRisk)
            }
        }
    }

    /// Queued and in-flight segments by their healthy shards, and how many of them have fewer
    /// than k + `margin` (at risk): for the metrics.
    public func degradedSegments(margin: Int) -> (byHealthy: [Int: Int], atRisk: Int) {
        state.withLock { state in
            var byHealthy: [Int: Int] = [:]
            var atRisk = 0
            for entry in state.queue.entries + state.inFlight {
                byHealthy[entry.healthy, default: 0] += 1
                if entry.healthy < entry.dataShards + margin { atRisk += 1 }
            }
            return (byHealthy, atRisk)
        }
    }

    /// Countries where nothing new may be placed, as this leader decided.
    public var quarantinedCountries: Set<Country> { state.withLock { $0.countries.quarantined } }

    /// Compares each node's store with the one its placements refer to (`Keyspace.disk`):
    /// records it for a node that has none recorded, and returns the nodes whose store
    /// changed (a replaced or wiped disk: every shard placed there before is gone).
    ///
    /// A replaced node is trusted with its new store once nothing is placed on it any more
    /// and this leader has seen it replaced for longer than the collector's grace, so that an
    /// upload that wrote to the old store before the change has committed (and its placement
    /// is found and repaired) or been abandoned by then.
    private func reconcileStores(_ term: LeaderTerm, now: Int64) async throws(CoordinatorError) -> Set<NodeID> {
        let recorded: [NodeID: MetadataEntry]
        do { recorded = try await metadata.byNode(Keyspace.disks) } catch { throw CoordinatorError(error.code, error.message) }
        let graceMs = objects.collectorGrace.nanoseconds / 1_000_000
        var replaced = Set<NodeID>()
        for (node, live) in objects.topology.incarnations().sorted(by: { $0.key < $1.key }) {
            let key = Keyspace.disk(node)
            guard let entry = recorded[node] else {
                _ = try? await metadata.commit(if: [term.fence, .absent(key)], then: [.put(key, Array(live.utf8))])
                continue
            }
            guard String(decoding: entry.value, as: UTF8.self) != live else {
                state.withLock { _ = $0.replacedSince.removeValue(forKey: node) }
                continue
            }
            let since = state.withLock { state in
                if state.replacedSince[node] == nil { state.replacedSince[node] = now }
                return state.replacedSince[node]!
            }
            if now - since >= graceMs, try await metadata.objectsPlaced(on: node, limit: 1).isEmpty {
                let trusted = try? await metadata.commit(if: [term.fence, .revision(key, entry.modRevision)], then: [.put(key, Array(live.utf8))])
                if trusted != nil {
                    state.withLock { _ = $0.replacedSince.removeValue(forKey: node) }
                    continue
                }
            }
            replaced.insert(node)
        }
        return replaced
    }

    /// Drops index entries that place an object on a node its manifest does not name: left
    /// by a repair or a delete whose index update failed, or by an upload that never
    /// committed (then only once older than the collector's grace, with no upload intent).
    /// Otherwise they would keep a country from being evacuated and a replaced node from
    /// being trusted again. Each delete is conditional on the entry and on the leader's fence:
    /// only this leader moves shards, and it does not while it scans.
    private func dropStalePlacements(_ entries: [MetadataEntry], of objectId: String, manifest: ObjectManifest?, _ term: LeaderTerm, now: Int64) async {
        let graceMs = objects.collectorGrace.nanoseconds / 1_000_000
        let named = Set(manifest?.segments.flatMap { $0.shards.map(\.node.value) } ?? [])
        for entry in entries {
            let node = entry.key.split(separator: "/").dropFirst().first.map(String.init) ?? ""
            if manifest != nil {
                guard !named.contains(node) else { continue }
            } else {
                let written = Int64(String(decoding: entry.value, as: UTF8.self)) ?? 0
                guard now - written >= graceMs else { continue }
                guard (try? await metadata.get(Keyspace.upload(objectId))) == .some(nil) else { continue }
            }
            _ = try? await metadata.commit(if: [term.fence, .revision(entry.key, entry.modRevision)], then: [.delete(entry.key)])
        }
    }

    private func readSuspects() async throws(CoordinatorError) -> Set<ShardRef> {
        let page: [MetadataEntry]
        do { page = try await metadata.list(prefix: Keyspace.suspects, after: nil, limit: Limits.metadataListPageMax) } catch {
            throw CoordinatorError(error.code, error.message)
        }
        var refs = Set<ShardRef>()
        for entry in page {
            let parts = entry.key.dropFirst(Keyspace.suspects.count).split(separator: "/")
            guard parts.count == 4, let segment = Int(parts[2]), let shard = Int(parts[3]) else { continue }
            guard let node = try? NodeID(String(parts[0])) else { continue }
            refs.insert(ShardRef(objectId: String(parts[1]), segment: segment, shard: shard, node: node))
        }
        return refs
    }

    /// Drops suspect reports that say nothing any more (object gone, copy moved).
    private func clearSuspects(_ refs: Set<ShardRef>) async {
        for ref in refs.sorted() { try? await metadata.delete(Keyspace.suspect(ref.node, ref.objectId, segment: ref.segment, shard: ref.shard)) }
    }

    private func readBudget() async {
        guard let budget = await metadata.repairBudget() else { return }
        let now = nanoseconds
        state.withLock { state in
            if state.pacer.bytesPerSecond != budget { state.pacer.setBudget(budget, now: now) }
            state.status.budgetBytesPerSecond = budget
        }
    }

    // MARK: - Repair

    /// Repairs segments of one object, paced by the budget.
    private func carryOut(_ directives: [RepairDirective], _ term: LeaderTerm) async {
        let objectId = directives[0].objectId
        let bytes = directives.reduce(0) { $0 + $1.bytes }
        // A budget of zero pauses repair: the work goes back to the queue.
        let paused = state.withLock { state in
            guard state.pacer.bytesPerSecond <= 0 else { return false }
            for directive in directives { state.queue.insert(directive) }
            return true
        }
        if paused { return }
        let spentAt = nanoseconds
        let wait = state.withLock { $0.pacer.spend(bytes, now: spentAt) }
        if wait > 0 { await clock.sleep(.nanoseconds(wait)) }
        let (lost, suspects) = state.withLock { ($0.planner?.lost ?? [], $0.suspects) }
        do {
            let outcome = try await objects.repairSegments(
                objectId: objectId, segments: directives.map(\.segment), lostNodes: lost, suspects: suspects, fence: term.fence)
            let doneAt = nanoseconds
            state.withLock { state in
                switch outcome {
                case .repaired(_, let written, _, let debt):
                    state.status.bytesDone += written
                    state.meter.record(written, now: doneAt)
                    state.status.segmentsRepaired += directives.count
                    if debt { state.status.placementDebtCreated += 1 }
                case .skipped:
                    break
                case .conflict:
                    // Planned again from the manifest as it is now (the queue is cleared if
                    // the leadership is what changed).
                    state.status.decisionsRefused += 1
                    for directive in directives { state.queue.insert(directive) }
                }
            }
            switch outcome {
            case .conflict(let why):
                logger.warning("repair decision refused", metadata: ["object.id": "\(objectId)", "leader.epoch": "\(term.epoch)", "reason": "\(why)"])
            case .repaired(let read, let written, _, _):
                logger.info("segments repaired", metadata: [
                    "object.id": "\(objectId)", "segment.indices": "\(directives.map(\.segment))", "bytes.read": "\(read)",
                    "bytes.written": "\(written)", "segment.healthy": "\(directives.map(\.healthy).min() ?? 0)",
                ])
            case .skipped:
                break
            }
        } catch {
            state.withLock { state in
                state.status.segmentsFailed += directives.count
                state.status.lastError = "\(objectId) segments \(directives.map(\.segment)): \(error.message)"
            }
            logger.warning("segment repair failed", metadata: ["object.id": "\(objectId)", "error": "\(error.message)"])
        }
    }

    // MARK: - Status

    /// Publishes the status for every coordinator to read, at most once a second (and
    /// whenever the queue drains).
    private func publish(_ term: LeaderTerm, force: Bool) async {
        let now = clock.monotonic()
        let (nanos, wall) = (nanoseconds, clock.wallMillis())
        let status: RepairStatus? = state.withLock { state in
            guard state.published.take(now: now, interval: force ? .milliseconds(250) : .seconds(1)) else { return nil }
            Self.refresh(&state, now: nanos, wall: wall)
            return state.status
        }
        guard let status else { return }
        let countries = CountryList(leader: term.coordinator, countries: countryReports())
        _ = try? await metadata.commit(if: [term.fence], then: [.putJSON(Keyspace.repairStatus, status), .putJSON(Keyspace.countryStates, countries)])
    }
}
