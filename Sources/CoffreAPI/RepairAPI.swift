/// A status a leader's background service publishes for every coordinator to serve.
public protocol LeaderPublished: Codable, Sendable {
    /// The coordinator that published it (the leader then).
    var leader: String? { get }
    /// Its term.
    var epoch: Int64 { get }
}

/// `GET /v1/admin/repair`: the leader's repair worker as it last published itself.
///
/// The key names are part of the API (`coffre admin repair status --json` prints this).
public struct RepairStatus: LeaderPublished, Hashable {
    /// The coordinator that leads (runs repair), nil while nobody does.
    public var leader: String?
    public var epoch: Int64
    /// Segments waiting for repair.
    public var queuedSegments: Int
    /// Bytes of shards rebuilt in this term (k times as many were read to rebuild them).
    public var bytesDone: Int64
    /// Bytes of shards the queued segments will rebuild.
    public var bytesLeft: Int64
    /// Over the last ten seconds.
    public var rateBytesPerSecond: Double
    /// `bytesLeft` at the current rate (at the budget when idle); nil when nothing is left.
    public var etaSeconds: Double?
    /// Healthy shards of the most at-risk queued segment; nil when the queue is empty.
    public var mostAtRiskHealthyShards: Int?
    public var budgetBytesPerSecond: Int64
    public var segmentsRepaired: Int
    public var segmentsFailed: Int
    /// Repairs whose commit was refused: the manifest or the leadership changed meanwhile.
    public var decisionsRefused: Int
    /// Segments that cannot be rebuilt now (fewer than k healthy shards reachable).
    public var segmentsUnrepairable: Int
    /// Nodes down, and those down past `repair_after` whose shards are rebuilt elsewhere.
    public var downNodes: [String]
    public var lostNodes: [String]
    /// Nodes that answer with another store than the one their placements refer to (a
    /// replaced or wiped disk): their shards are rebuilt elsewhere, and they take no new
    /// ones until they hold none of the old placements.
    public var replacedNodes: [String]
    /// Segments repaired onto a topology that could not honour the country rule.
    public var placementDebtCreated: Int
    public var lastError: String?
    /// Milliseconds since 1970 when published.
    public var updatedAt: Int64

    public init(leader: String?, epoch: Int64, budgetBytesPerSecond: Int64, updatedAt: Int64) {
        self.leader = leader
        self.epoch = epoch
        queuedSegments = 0
        bytesDone = 0
        bytesLeft = 0
        rateBytesPerSecond = 0
        etaSeconds = nil
        mostAtRiskHealthyShards = nil
        self.budgetBytesPerSecond = budgetBytesPerSecond
        segmentsRepaired = 0
        segmentsFailed = 0
        decisionsRefused = 0
        segmentsUnrepairable = 0
        downNodes = []
        lostNodes = []
        replacedNodes = []
        placementDebtCreated = 0
        lastError = nil
        self.updatedAt = updatedAt
    }
}

/// `PUT /v1/admin/repair/budget`.
public struct RepairBudgetRequest: Codable, Hashable, Sendable {
    public let bytesPerSecond: Int64
    public init(bytesPerSecond: Int64) { self.bytesPerSecond = bytesPerSecond }
}

/// `GET /v1/admin/gc`: the leader's garbage collector as it last published itself.
/// What the leader's bin purge did since this coordinator started leading.
public struct BinPurgeStatus: Codable, Hashable, Sendable {
    public var retentionSeconds: Int64
    public var passes = 0
    /// Bin entries purged, and the files and folders and ciphertext bytes they held.
    public var entries = 0
    public var nodes = 0
    public var bytes: Int64 = 0
    public var failures = 0
    public var lastError: String?
    public init(retentionSeconds: Int64) { self.retentionSeconds = retentionSeconds }
}

public struct CollectorStatus: LeaderPublished, Hashable {
    public var leader: String?
    public var epoch: Int64
    /// Unreferenced shards younger than this are left alone.
    public var graceSeconds: Int64
    public var shardsScanned: Int64
    public var shardsDeleted: Int64
    public var bytesReclaimed: Int64
    /// Shards a compare-and-delete refused (written again after the collector decided).
    public var deletesRefused: Int64
    /// Full rounds over every node.
    public var passesCompleted: Int
    /// The node being walked now.
    public var currentNode: String?
    public var lastError: String?
    public var updatedAt: Int64
    /// The leader's rubbish bin purge (Docs/policy.md, "Rubbish bin").
    public var binPurge: BinPurgeStatus?

    public init(leader: String?, epoch: Int64, graceSeconds: Int64, updatedAt: Int64) {
        self.leader = leader
        self.epoch = epoch
        self.graceSeconds = graceSeconds
        shardsScanned = 0
        shardsDeleted = 0
        bytesReclaimed = 0
        deletesRefused = 0
        passesCompleted = 0
        currentNode = nil
        lastError = nil
        self.updatedAt = updatedAt
    }
}

/// `GET /v1/admin/scrub`: the leader's scrub schedule as it last published itself.
public struct ScrubStatus: LeaderPublished, Hashable {
    public var leader: String?
    public var epoch: Int64
    public var shardsScanned: Int64 = 0
    public var bytesVerified: Int64 = 0
    /// Shards the nodes found corrupt or missing.
    public var corruptFound: Int64 = 0
    /// Of those, the ones a manifest references: queued for repair.
    public var suspectsRecorded: Int64 = 0
    public var passesCompleted: Int = 0
    public var currentNode: String?
    public var lastError: String?
    public var updatedAt: Int64 = 0

    public init(leader: String?, epoch: Int64) {
        self.leader = leader
        self.epoch = epoch
    }
}

/// `POST /v1/admin/scrub/{node}`: one whole pass over a node, run now.
public struct ScrubReport: Codable, Hashable, Sendable {
    public var node: String
    public var shardsScanned: Int64 = 0
    public var bytesVerified: Int64 = 0
    public var corrupt: [ScrubStep.Finding] = []
    /// Corrupt shards a manifest references, recorded for repair.
    public var suspectsRecorded: Int = 0

    public init(node: String) { self.node = node }

    public mutating func add(_ step: ScrubStep, suspects: Int) {
        shardsScanned += Int64(step.scanned)
        bytesVerified += Int64(step.bytesVerified)
        corrupt += step.corrupt
        suspectsRecorded += suspects
    }
}

/// `GET /v1/admin/rebalance`: the leader's rebalancer (draining nodes) as it last published
/// itself. The key names are part of the API (`coffre admin rebalance status --json`).
public struct RebalanceStatus: LeaderPublished, Hashable {
    public struct Drain: Codable, Hashable, Sendable {
        public var node: String
        /// Milliseconds since 1970 when an operator asked for it.
        public var requestedAt: Int64
        /// Objects that still have a shard on the node (from the placement index); 0: empty.
        public var objectsLeft: Int
        public init(node: String, requestedAt: Int64, objectsLeft: Int) {
            self.node = node
            self.requestedAt = requestedAt
            self.objectsLeft = objectsLeft
        }
    }

    /// A rebalance an operator started (`coffre admin rebalance start`): passes over every
    /// manifest, moving shards for placement debt and skew, until a pass moves nothing.
    public struct Job: Codable, Hashable, Sendable {
        /// Milliseconds since 1970 when it was started.
        public var startedAt: Int64
        /// Utilisation spread (fraction of capacity) it leaves alone.
        public var spread: Double
        /// Passes over the manifests so far (the first is 1).
        public var pass: Int
        /// The last object of this pass planned (nil: the pass starts).
        public var cursor: String?
        /// Moves made in this pass: a pass with none ends the job.
        public var movesThisPass: Int

        public init(startedAt: Int64, spread: Double) {
            self.startedAt = startedAt
            self.spread = spread
            pass = 1
            cursor = nil
            movesThisPass = 0
        }
    }

    public var leader: String?
    public var epoch: Int64
    public var draining: [Drain] = []
    /// The running rebalance, if any.
    public var job: Job?
    /// Milliseconds since 1970 when the last rebalance ended (a pass moved nothing).
    public var lastJobFinishedAt: Int64?
    public var movesDone: Int = 0
    public var bytesMoved: Int64 = 0
    /// Over the last ten seconds.
    public var rateBytesPerSecond: Double = 0
    /// Moves refused at commit (the manifest or the leadership changed) or failed.
    public var movesRefused: Int = 0
    public var movesFailed: Int = 0
    /// Segments the planner left alone in the last plan (at risk: repair first; or no room).
    public var segmentsSkipped: Int = 0
    public var lastError: String?
    public var updatedAt: Int64 = 0

    public init(leader: String?, epoch: Int64) {
        self.leader = leader
        self.epoch = epoch
    }
}

/// `POST /v1/admin/rebalance/start`.
public struct RebalanceStartRequest: Codable, Hashable, Sendable {
    /// Utilisation spread left alone (0.01...1; default 0.05).
    public var spread: Double?
    public init(spread: Double? = nil) { self.spread = spread }
}

/// `GET /v1/admin/rebalance/plan`: what rebalancing would do now (a dry run), or with more
/// nodes drained or countries removed (what-if). Nothing changes. The key names are part of
/// the API (`coffre admin rebalance plan --json`, `coffre admin plan ... --json`).
public struct RebalancePlanReport: Codable, Hashable, Sendable {
    public struct Move: Codable, Hashable, Sendable {
        public var objectId: String
        public var segment: Int
        public var shard: Int
        public var from: String
        public var to: String
        public var bytes: Int64
        /// `drain`, `violation` or `skew`.
        public var reason: String

        public init(objectId: String, segment: Int, shard: Int, from: String, to: String, bytes: Int64, reason: String) {
            self.objectId = objectId
            self.segment = segment
            self.shard = shard
            self.from = from
            self.to = to
            self.bytes = bytes
            self.reason = reason
        }
    }

    /// Nodes treated as drained: those being drained, those asked for, those of removed countries.
    public var draining: [String] = []
    /// Nodes a what-if added (`plan add-country`), empty and up; absent otherwise.
    public var added: [String]?
    public var moves: Int = 0
    public var movesByReason: [String: Int] = [:]
    public var bytes: Int64 = 0
    /// Bytes from one country to another, keyed "FR>DE".
    public var bytesByCountryPair: [String: Int64] = [:]
    /// The fewest healthy shards any segment that moves has while its moves run.
    public var lowestHealthyDuringMoves: Int?
    public var budgetBytesPerSecond: Int64 = 0
    /// `bytes` at the budget; nil when nothing moves or the budget is 0.
    public var estimatedSeconds: Double?
    public var segmentsSkipped: Int = 0
    /// Why, for the first few skipped segments.
    public var skipped: [String] = []
    /// Whether the nodes left (up, not drained, outside excluded countries) can hold k + m
    /// shards of a segment within the country rule.
    public var policyCanBeMet: Bool = true
    public var objectsScanned: Int = 0
    /// False when the cluster holds more objects than one plan reads: the figures cover
    /// `objectsScanned` of them.
    public var complete: Bool = true
    /// The first moves, in order.
    public var firstMoves: [Move] = []

    public init() {}
}

/// `GET /v1/admin/drill/preflight`: what a drill's fault would leave, before it starts. The
/// key names are part of the API (`coffre admin drill preflight --json`).
public struct DrillPreflightReport: Codable, Hashable, Sendable {
    public struct Segment: Codable, Hashable, Sendable {
        public var objectId: String
        public var segment: Int
        public var healthy: Int
        public init(objectId: String, segment: Int, healthy: Int) {
            self.objectId = objectId
            self.segment = segment
            self.healthy = healthy
        }
    }

    /// The nodes the drill would take away.
    public var fault: [String]
    public var dataShards: Int
    public var margin: Int
    /// The fewest healthy shards any segment would keep; nil when there is no segment.
    public var lowestHealthy: Int?
    /// False: some segment would fall under k + margin, and the drill is refused.
    public var allowed: Bool
    public var atRiskCount: Int
    /// The riskiest of them (at most 20).
    public var atRisk: [Segment]
    public var segments: Int
    public var objectsScanned: Int
    /// False when the cluster holds more objects than one check reads.
    public var complete: Bool

    public init(
        fault: [String], dataShards: Int, margin: Int, lowestHealthy: Int?, allowed: Bool, atRiskCount: Int, atRisk: [Segment], segments: Int,
        objectsScanned: Int, complete: Bool
    ) {
        self.fault = fault
        self.dataShards = dataShards
        self.margin = margin
        self.lowestHealthy = lowestHealthy
        self.allowed = allowed
        self.atRiskCount = atRiskCount
        self.atRisk = atRisk
        self.segments = segments
        self.objectsScanned = objectsScanned
        self.complete = complete
    }
}

/// `GET /v1/admin/countries`: each country's state as the leader decided it.
public struct CountryReport: Codable, Hashable, Sendable {
    public var country: String
    /// `up`, `down`, `quarantined` or `evacuated` (Docs/operations.md, "Countries").
    public var state: String
    /// Milliseconds since 1970 when it entered that state.
    public var since: Int64
    public var nodesUp: Int
    public var nodesDown: Int
    /// Queued segments with a lost shard in this country.
    public var segmentsAtRisk: Int

    public init(country: String, state: String, since: Int64, nodesUp: Int, nodesDown: Int, segmentsAtRisk: Int) {
        self.country = country
        self.state = state
        self.since = since
        self.nodesUp = nodesUp
        self.nodesDown = nodesDown
        self.segmentsAtRisk = segmentsAtRisk
    }
}

public struct CountryList: Codable, Hashable, Sendable {
    public var leader: String?
    public var countries: [CountryReport]
    public init(leader: String?, countries: [CountryReport]) {
        self.leader = leader
        self.countries = countries
    }
}

/// `POST /v1/cluster/announce` on a coordinator's cluster listener (mutual TLS): a storage
/// node says where it is. The node id must be the one its certificate names.
public struct NodeAnnouncement: Codable, Hashable, Sendable {
    public let node: String
    public let country: String
    public let region: String
    /// Where coordinators reach it: `https://HOST:PORT`.
    public let url: String

    public init(node: String, country: String, region: String, url: String) {
        self.node = node
        self.country = country
        self.region = region
        self.url = url
    }
}

/// `DELETE /v1/admin/nodes/{node}`: a node removed from the cluster after its drain.
public struct NodeRemoval: Codable, Hashable, Sendable {
    public var node: String
    /// Milliseconds since 1970.
    public var removedAt: Int64
    public init(node: String, removedAt: Int64) {
        self.node = node
        self.removedAt = removedAt
    }
}
