import ClusterTLS
public import DaemonConfiguration
import CoffreAPI
import CoffreModel
import Crypto
import Foundation
public import HTTPService
import HTTPTypes
import Hummingbird
import HummingbirdHTTP2
public import Logging
import Metadata
import NIOCore
import NodeClient
import Placement
import Synchronization
public import Telemetry

/// A coordinator: the client API over TLS (HTTP/1.1 and HTTP/2 by ALPN) in front of the
/// object store, the account and tree records, and share links.
///
/// Stateless over the metadata store: any coordinator serves any request. It handles
/// ciphertext and opaque blobs only; it never sees a plaintext byte, a name or a key.
public final class CoordinatorServer: Sendable {
    public let configuration: CoordinatorConfiguration
    public let objects: ObjectStore
    let metadata: any MetadataStore
    let logger: Logger
    let nodeClient: StorageNodeClient
    /// Session records already read, by the token's hash. A session record never changes
    /// once written (sessions expire; there is no revocation yet — when there is, this cache
    /// needs invalidating through a watch on `sessions/`), so a cached one is as good as a
    /// read and saves an etcd round trip on every request.
    let sessions = Mutex<[String: SessionRecord]>([:])
    /// Sign-in and registration attempts by account name and source address.
    let attempts = Mutex(RateLimiter())
    /// Background services: node health, leadership, repair.
    public let health: HealthMonitor
    public let election: LeaderElection
    public let repair: RepairWorker
    public let collector: GarbageCollector
    public let scrub: ScrubScheduler
    public let rebalance: RebalanceWorker
    public let drills: DrillWorker
    public let policies: PolicyWorker
    /// Bytes served by account, for transfer quotas.
    public let transfers: TransferMeter
    /// On the leader: purges rubbish bin entries past `bin_retention_seconds`.
    public let binPurger: BinPurger
    /// A drill's fault on this coordinator's client API (admin requests pass).
    let faults: FaultGate
    /// Connections held, refused and cut off (client API and cluster listener together).
    public let connections: ConnectionCounter
    /// Who each cluster-listener connection's certificate names (nodes announcing themselves).
    let peers = PeerIdentities()
    /// What `/metrics` of the telemetry listener shows.
    public let metrics: MetricsRegistry

    public init(configuration: CoordinatorConfiguration, logger: Logger) throws {
        try configuration.validate(file: "configuration")
        self.configuration = configuration
        self.logger = logger
        connections = ConnectionCounter(limits: ConnectionLimits(requestsInFlightMax: configuration.requestsInFlightMax))
        let metrics = MetricsRegistry()
        self.metrics = metrics
        if configuration.etcd.isEmpty {
            metadata = MeteredMetadataStore(base: try EmbeddedMetadataStore(path: configuration.metadataDirectory!), metrics: metrics)
        } else {
            let tls = try configuration.etcdTLS.map { files throws(ClusterTLSError) in
                try TLSSetup.client(ca: files.ca, certificate: files.certificate, key: files.key)
            }
            metadata = MeteredMetadataStore(base: try EtcdMetadataStore(endpoints: configuration.etcd, tls: tls), metrics: metrics)
        }
        nodeClient = StorageNodeClient(tls: try TLSSetup.client(
            ca: configuration.tls.clusterCA, certificate: configuration.tls.certificate, key: configuration.tls.key),
            timeout: .seconds(30), probeTimeout: .seconds(10))
        let members = try configuration.nodes.map {
            ClusterTopology.Member(id: try NodeID($0.id), country: try Country($0.country), region: $0.region, url: $0.url)
        }
        let topology = ClusterTopology(members: members, client: nodeClient, downAfter: .seconds(configuration.downAfterSeconds))
        let values = try configuration.placementPolicy()
        let policy = try PlacementPolicy(erasure: values.erasure, margin: values.margin, excludedCountries: values.excluded)
        let transport = MeteredShardTransport(base: nodeClient, metrics: metrics) { [topology] url in
            topology.members.first { $0.url == url }?.id.value ?? url
        }
        objects = ObjectStore(
            topology: topology, metadata: metadata, policy: policy, segmentSize: configuration.segmentSizeBytes,
            collectorGrace: .seconds(configuration.gcGraceSeconds), transport: transport, metrics: metrics)
        let faults = FaultGate()
        self.faults = faults
        let election = LeaderElection(coordinator: configuration.id, metadata: metadata, ttlSeconds: configuration.leaderLeaseSeconds, logger: logger)
        self.election = election
        health = HealthMonitor(
            coordinator: configuration.id, country: configuration.country, topology: topology, metadata: metadata, logger: logger,
            onPoll: { [id = configuration.id, logger, metadata, objects] in
                do {
                    let drill = try await DrillWorker.read(metadata)?.0
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    Self.applyDrill(drill, coordinator: id, now: now, faults: faults, logger: logger)
                    await election.setSidelined(drill.map { $0.faults(coordinator: id, now: now) && $0.mode != .slow } ?? false)
                    try await Self.followPolicy(metadata, objects, logger: logger)
                } catch {
                    logger.warning("cannot read the cluster's settings", metadata: ["error": "\(error)"])
                }
            })
        repair = RepairWorker(
            objects: objects, election: election,
            settings: .init(
                downAfterMilliseconds: Int64(configuration.downAfterSeconds) * 1000,
                repairAfterMilliseconds: Int64(configuration.repairAfterSeconds) * 1000,
                budgetBytesPerSecond: configuration.repairBudgetBytesPerSecond),
            logger: logger)
        let reference = ServerReference()
        let binPurger = BinPurger(
            metadata: metadata, election: election, clock: objects.clock, retentionSeconds: configuration.binRetentionSeconds, logger: logger
        ) { entry in
            guard let server = reference.server else { throw CancellationError() }
            return try await server.purgeDue(entry, budget: Limits.purgeNodesPerPass)
        }
        self.binPurger = binPurger
        collector = GarbageCollector(
            objects: objects, election: election, settings: .init(grace: .seconds(configuration.gcGraceSeconds)), logger: logger,
            binPurge: { binPurger.status() })
        scrub = ScrubScheduler(
            objects: objects, election: election, settings: .init(budgetBytesPerSecond: configuration.scrubBudgetBytesPerSecond),
            logger: logger)
        rebalance = RebalanceWorker(
            objects: objects, election: election, settings: .init(budgetBytesPerSecond: configuration.repairBudgetBytesPerSecond),
            logger: logger)
        drills = DrillWorker(objects: objects, election: election, repair: repair, logger: logger)
        policies = PolicyWorker(
            objects: objects, election: election, settings: .init(budgetBytesPerSecond: configuration.repairBudgetBytesPerSecond), logger: logger)
        transfers = TransferMeter(
            coordinator: configuration.id, metadata: metadata, window: TransferWindow(seconds: configuration.transferWindowSeconds),
            flushInterval: .seconds(configuration.transferFlushSeconds), clock: objects.clock, logger: logger)
        registerMetrics()
        reference.set(self)
    }

    /// Writes new objects in the scheme operators set (`Keyspace.clusterPolicy`), once set.
    static func followPolicy(_ metadata: any MetadataStore, _ objects: ObjectStore, logger: Logger) async throws {
        guard let entry = try await metadata.get(Keyspace.clusterPolicy),
            let set = try? JSONDecoder().decode(ClusterPolicy.self, from: Data(entry.value)),
            let erasure = try? ErasurePolicy(dataShards: set.k, parityShards: set.m)
        else { return }
        if objects.setPolicy(objects.policy.forSegments(of: erasure)) {
            logger.notice("erasure scheme changed", metadata: ["policy": "\(erasure)"])
        }
    }

    /// Puts a drill's fault on this coordinator's client API while the drill names it, and
    /// takes it off once it does not.
    static func applyDrill(_ drill: DrillRecord?, coordinator id: String, now: Int64, faults: FaultGate, logger: Logger) {
        let wanted = drill.flatMap { drill -> NodeFault? in
            guard drill.faults(coordinator: id, now: now) else { return nil }
            return NodeFault(
                drill: drill.id, mode: drill.mode, untilMillis: drill.nodeFaultUntil, latencyMilliseconds: drill.latencyMilliseconds,
                lossPercent: drill.lossPercent)
        }
        let had = faults.current
        guard had != wanted else { return }
        faults.set(wanted)
        if let wanted {
            logger.notice("drill fault on", metadata: ["coordinator.id": "\(id)", "drill.id": "\(wanted.drill)", "drill.mode": "\(wanted.mode.rawValue)"])
        } else {
            logger.notice("drill fault lifted", metadata: ["coordinator.id": "\(id)"])
        }
    }

    /// Serves until cancelled or SIGTERM/SIGINT, with the background services (node health,
    /// leadership, repair) in the same service group.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let tls = try TLSSetup.server(certificate: configuration.tls.certificate, key: configuration.tls.key, clientCA: nil)
        var app = Application(
            router: makeRouter(),
            server: try guardedServer(tls: tls, connections: connections),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "coffre-coordinator"),
            onServerRunning: { [configuration, logger] channel in
                let port = channel.localAddress?.port ?? 0
                if let file = configuration.portFile { try? String(port).write(toFile: file, atomically: true, encoding: .utf8) }
                logger.info("coordinator listening", metadata: ["coordinator.id": "\(configuration.id)", "coordinator.port": "\(port)"])
                await onListening(port)
            },
            logger: logger)
        if let clusterPort = configuration.clusterPort {
            let mutual = try TLSSetup.server(
                certificate: configuration.tls.certificate, key: configuration.tls.key, clientCA: configuration.tls.clusterCA, alpn: ["http/1.1"])
            let cluster = Application(
                router: makeClusterRouter(),
                server: try guardedServer(tls: mutual, connections: connections),
                configuration: .init(address: .hostname(configuration.host, port: clusterPort), serverName: "coffre-coordinator-cluster"),
                onServerRunning: { [configuration] channel in
                    if let file = configuration.clusterPortFile {
                        try? String(channel.localAddress?.port ?? 0).write(toFile: file, atomically: true, encoding: .utf8)
                    }
                },
                logger: logger)
            app.addServices(cluster)
        }
        if let telemetry = configuration.telemetry {
            app.addServices(TelemetryListener.application(
                host: telemetry.host, port: telemetry.port, portFile: telemetry.portFile, metrics: metrics, logger: logger,
                readiness: { [self] in await readiness() }))
        }
        await health.step()
        app.addServices(health, election, repair, collector, scrub, rebalance, drills, policies, transfers, binPurger)
        do {
            try await app.runService()
        } catch {
            try? await nodeClient.shutdown()
            throw error
        }
        try await nodeClient.shutdown()
    }

    func makeRouter() -> Router<ServiceContext> {
        let router = Router(context: ServiceContext.self)
        router.middlewares.add(RequestMetricsMiddleware<ServiceContext>(metrics: metrics))
        router.middlewares.add(ErrorMiddleware<ServiceContext>())
        router.middlewares.add(RequestsInFlightMiddleware<ServiceContext>(counter: connections))
        router.middlewares.add(FaultMiddleware<ServiceContext>(gate: faults) { $0.hasPrefix("/v1/admin/") })
        router.get("/v1/health") { [self] _, _ in
            let nodes = objects.topology.descriptors()
            let up = nodes.filter(\.isUp).count
            return try jsonResponse(CoordinatorHealth(
                coordinator: configuration.id, country: configuration.country, status: up > 0 ? "ok" : "degraded", nodesUp: up, nodes: nodes.count,
                connections: connections.stats))
        }
        router.get("/v1/prelogin/:username") { [self] _, context in try await prelogin(context) }
        router.post("/v1/accounts") { [self] request, context in try await register(request, context) }
        router.post("/v1/sessions") { [self] request, context in try await login(request, context) }
        router.get("/v1/whoami") { [self] request, _ in try await whoami(request) }
        router.post("/v1/nodes") { [self] request, _ in try await createFolder(request) }
        router.get("/v1/nodes") { [self] request, _ in try await listChildren(request) }
        router.get("/v1/nodes/:id") { [self] request, context in try jsonResponse(try await ownedNode(request, context)) }
        router.patch("/v1/nodes/:id") { [self] request, context in try await updateNode(request, context) }
        router.delete("/v1/nodes/:id") { [self] request, context in try await deleteNode(request, context) }
        router.post("/v1/nodes/:id/trash") { [self] request, context in try await trashNode(request, context) }
        router.post("/v1/nodes/:id/restore") { [self] request, context in try await restoreNode(request, context) }
        router.get("/v1/bin") { [self] request, _ in try await listBin(request) }
        router.delete("/v1/bin") { [self] request, _ in try await emptyBin(request) }
        router.put("/v1/nodes/:id/content") { [self] request, context in try await upload(request, context) }
        router.get("/v1/nodes/:id/content") { [self] request, context in
            let id = try validNodeId(try context.parameters.require("id"))
            let owner = try await treeAccess(request, at: id, write: false).account
            guard let (node, _) = try await read(TreeNodeInfo.self, treeKey(owner.id, id)) else { throw APIError(.notFound, "no node \(id)") }
            return try await content(of: node, owner: owner, request)
        }
        router.put("/v1/account/keys") { [self] request, _ in try await publishKeys(request) }
        router.get("/v1/users/:username/keys") { [self] request, context in try await userKeys(request, context) }
        router.post("/v1/nodes/:id/rekey") { [self] request, context in try await rekeyFolder(request, context) }
        router.post("/v1/nodes/:id/rekey/children") { [self] request, context in try await rekeyChildren(request, context) }
        router.delete("/v1/nodes/:id/rekey") { [self] request, context in try await finishRekey(request, context) }
        router.get("/v1/rekeys") { [self] request, _ in try await listKeyChanges(request) }
        router.post("/v1/shares") { [self] request, _ in try await createShare(request) }
        router.get("/v1/shares") { [self] request, _ in try await listShares(request) }
        router.delete("/v1/shares/:node/:recipient") { [self] request, context in try await deleteShare(request, context) }
        router.post("/v1/links") { [self] request, _ in try await createLink(request) }
        router.get("/v1/links") { [self] request, _ in try await listLinks(request) }
        router.delete("/v1/links/:id") { [self] request, context in try await revokeLink(request, context) }
        router.get("/v1/l/:id") { [self] _, context in try jsonResponse(try await publicLink(context)) }
        router.get("/v1/l/:id/content") { [self] request, context in
            let (owner, link) = try await resolveLink(context)
            return try await content(of: link.node, owner: owner, checked: true, request)
        }
        router.get("/l/:id") { [self] request, context in
            // The page for a browser; a dead link gets the same page with 404 (it explains).
            let found: PublicLink
            do { found = try await publicLink(context) } catch let error as APIError where [.notFound, .accountSuspended].contains(error.code) || error.takedown != nil {
                guard LinkPage.wantsPage(request) else { throw error }
                let status: HTTPResponse.Status = error.code == .notFound ? .notFound : error.code == .accountSuspended ? .forbidden : .unavailableForLegalReasons
                return LinkPage.response(status: status)
            }
            return LinkPage.wantsPage(request) ? LinkPage.response(status: .ok) : try jsonResponse(found)
        }
        router.get("/v1/l/:id/nodes") { [self] request, context in try await listLinkChildren(request, context) }
        router.get("/v1/l/:id/nodes/:node/content") { [self] request, context in
            let (owner, link) = try await resolveLink(context)
            return try await content(of: try await node(try context.parameters.require("node"), under: link, owner: owner.id), owner: owner, request)
        }
        router.get("/v1/transparency") { [self] request, _ in try await transparencyPage(request) }
        router.get("/v1/takedowns") { [self] request, _ in try await ownTakedowns(request) }
        router.post("/v1/takedowns/:id/appeal") { [self] request, context in try await appealTakedown(request, context) }
        router.get("/v1/admin/accounts/:username") { [self] request, context in try await adminShowAccount(request, context) }
        router.patch("/v1/admin/accounts/:username") { [self] request, context in try await adminSetAccount(request, context) }
        router.post("/v1/admin/accounts/:username/suspend") { [self] request, context in try await adminSuspend(request, context, suspend: true) }
        router.post("/v1/admin/accounts/:username/unsuspend") { [self] request, context in try await adminSuspend(request, context, suspend: false) }
        router.put("/v1/account/excluded-countries") { [self] request, _ in try await setExcludedCountries(request) }
        router.post("/v1/admin/takedowns") { [self] request, _ in try await adminCreateTakedown(request) }
        router.get("/v1/admin/takedowns") { [self] request, _ in try await adminListTakedowns(request) }
        router.get("/v1/admin/takedowns/:id") { [self] request, context in try await adminShowTakedown(request, context) }
        router.post("/v1/admin/takedowns/:id/restore") { [self] request, context in try await adminRestoreTakedown(request, context) }
        router.get("/v1/admin/status") { [self] request, _ in try await adminStatus(request) }
        router.get("/v1/admin/objects/:id") { [self] request, context in try await adminObject(request, context) }
        router.get("/v1/admin/repair") { [self] request, _ in try await adminRepairStatus(request) }
        router.put("/v1/admin/repair/budget") { [self] request, _ in try await adminRepairBudget(request) }
        router.get("/v1/admin/gc") { [self] request, _ in try await adminCollectorStatus(request) }
        router.get("/v1/admin/countries") { [self] request, _ in try await adminCountries(request) }
        router.get("/v1/admin/rebalance") { [self] request, _ in try await adminRebalanceStatus(request) }
        router.get("/v1/admin/rebalance/plan") { [self] request, _ in try await adminRebalancePlan(request) }
        router.get("/v1/admin/drill/preflight") { [self] request, _ in try await adminDrillPreflight(request) }
        router.get("/v1/admin/drill") { [self] request, _ in try await adminDrill(request) }
        router.get("/v1/admin/policy") { [self] request, _ in try await adminPolicy(request) }
        router.post("/v1/admin/policy") { [self] request, _ in try await adminPolicyChange(request) }
        router.post("/v1/admin/policy/cancel") { [self] request, _ in try await adminPolicyCancel(request) }
        router.get("/v1/admin/policy/plan") { [self] request, _ in try await adminPolicyPlan(request) }
        router.post("/v1/admin/drill/start") { [self] request, _ in try await adminDrillStart(request) }
        router.post("/v1/admin/drill/stop") { [self] request, _ in try await adminDrillStop(request) }
        router.post("/v1/admin/rebalance/start") { [self] request, _ in try await adminRebalanceStart(request) }
        router.post("/v1/admin/rebalance/cancel") { [self] request, _ in try await adminRebalanceCancel(request) }
        router.put("/v1/admin/nodes/:node/drain") { [self] request, context in try await adminDrain(request, context, drain: true) }
        router.delete("/v1/admin/nodes/:node/drain") { [self] request, context in try await adminDrain(request, context, drain: false) }
        router.delete("/v1/admin/nodes/:node") { [self] request, context in try await adminRemoveNode(request, context) }
        router.get("/v1/admin/scrub") { [self] request, _ in try await adminScrubStatus(request) }
        router.post("/v1/admin/scrub/:node") { [self] request, context in try await adminScrubNode(request, context) }
        return router
    }

    // MARK: - Records

    struct AccountRecord: Codable {
        var id: String
        var username: String
        var authSalt: String
        var authHash: String
        var passwordSalt: String
        var passwordParameters: Argon2Parameters
        var keyRecord: String
        var quotaBytes: Int64
        var usedBytes: Int64
        var createdAt: Int64
        /// Published by the account's client for user shares (absent until then).
        var keys: PublicKeys?
        /// Set by an operator (Docs/policy.md): the account cannot act and its links serve
        /// nothing until it is lifted.
        var suspension: AccountSuspension?
        /// Countries none of the account's new objects may go to (Docs/policy.md); absent: none.
        var excludedCountries: [String]?
        /// Bytes its files may serve in the transfer window, set by an operator; absent: the
        /// coordinators' `transfer_quota_bytes_default`.
        var transferQuotaBytes: Int64?
        /// Folders of its in the rubbish bin (absent: none): while there are any, a link or a
        /// share checks the folders above its node too (`inBin`); otherwise the node's own mark
        /// says, with no read more.
        var foldersInBin: Int?
    }

    struct SessionRecord: Codable, Sendable {
        var accountId: String
        var expiresAt: Int64
    }

    struct StoredLink: Codable {
        var owner: String
        var info: LinkInfo
        /// Link takedowns in force (Docs/policy.md); absent when none ever was.
        var takedowns: [TakedownNotice]?
    }

    func read<T: Decodable>(_ type: T.Type, _ key: String) async throws -> (T, Int64)? {
        guard let entry = try await metadata.get(key) else { return nil }
        do {
            return (try JSONDecoder().decode(type, from: Data(entry.value)), entry.modRevision)
        } catch {
            throw APIError(.storageFailure, "record \(key) is unreadable")
        }
    }

    func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try! encoder.encode(value))
    }
}

func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

func randomToken(_ count: Int = 32) -> String {
    var generator = SystemRandomNumberGenerator()
    return Base64URL.encode((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
}

func sha256Hex(_ bytes: [UInt8]) -> String { Hex.encode(SHA256.hash(data: bytes)) }

/// A weak reference to the server, for a background service built before the server is
/// whole (the bin purge calls back into it).
final class ServerReference: Sendable {
    private struct Weak: @unchecked Sendable { weak var server: CoordinatorServer? }
    private let value = Mutex(Weak())
    var server: CoordinatorServer? { value.withLock { $0.server } }
    func set(_ server: CoordinatorServer) { value.withLock { $0.server = server } }
}
