/// How a drill's fault behaves on a process it targets.
public enum FaultMode: String, Codable, Hashable, Sendable, CaseIterable {
    /// The process refuses service: every request but the fault endpoint gets 503 at once.
    case stop
    /// Requests are taken and never answered (until the fault is lifted or expires): the
    /// peer sees its timeouts, as with traffic dropped on the wire.
    case blackhole
    /// Every request waits `latencyMilliseconds` first; `lossPercent` of them are then
    /// dropped (503).
    case slow
    /// The drill puts no fault on: the operator brings the failure about (kills processes,
    /// flips bytes on disk, fills a disk; `Cluster/drills/` does) and ends it by the TTL or
    /// `drill stop`; the drill watches, decides and reports as for the others.
    case external

    /// Whether the processes of the drill are faulted by Coffre's own fault layer.
    public var injects: Bool { self != .external }
}

/// A fault a storage node applies to itself (`PUT /v1/fault`): set by the leader for a drill,
/// lifted by it (`DELETE /v1/fault`), and lifted by the node itself at `untilMillis` at the
/// latest, so a leader that dies mid-drill cannot leave a node faulted.
public struct NodeFault: Codable, Hashable, Sendable {
    public var drill: String
    public var mode: FaultMode
    /// Milliseconds since 1970 when the node lifts it by itself.
    public var untilMillis: Int64
    public var latencyMilliseconds: Int
    public var lossPercent: Int

    public init(drill: String, mode: FaultMode, untilMillis: Int64, latencyMilliseconds: Int = 0, lossPercent: Int = 0) {
        self.drill = drill
        self.mode = mode
        self.untilMillis = untilMillis
        self.latencyMilliseconds = latencyMilliseconds
        self.lossPercent = lossPercent
    }
}

extension NodeAPI {
    /// `PUT` (body: `NodeFault`), `DELETE` and `GET` of the node's drill fault.
    public static let faultPath = "/v1/fault"
}

/// `POST /v1/admin/drill/start`.
public struct DrillStartRequest: Codable, Hashable, Sendable {
    public var nodes: [String]
    public var countries: [String]
    /// Coordinators by id or by country code.
    public var coordinators: [String]
    public var mode: FaultMode
    public var ttlSeconds: Int
    /// Healthy shards beyond k every segment must keep; nil: the policy's margin.
    public var margin: Int?
    public var latencyMilliseconds: Int?
    public var lossPercent: Int?

    public init(
        nodes: [String] = [], countries: [String] = [], coordinators: [String] = [], mode: FaultMode = .stop, ttlSeconds: Int = 300,
        margin: Int? = nil, latencyMilliseconds: Int? = nil, lossPercent: Int? = nil
    ) {
        self.nodes = nodes
        self.countries = countries
        self.coordinators = coordinators
        self.mode = mode
        self.ttlSeconds = ttlSeconds
        self.margin = margin
        self.latencyMilliseconds = latencyMilliseconds
        self.lossPercent = lossPercent
    }
}

/// A failover drill as the leader runs it (`cluster/drill`), and its report. The key names are
/// part of the API (`coffre admin drill status --json`, `drill report --json`).
///
/// Phases: `faulted` (the fault is on) → `recovering` (lifted: by its TTL, `drill stop`, or an
/// abort when a real failure elsewhere took a segment under k + margin) → `ended` (the
/// drilled nodes answer again and every segment has all its shards on healthy nodes, or the
/// recovery watch ran out).
public struct DrillRecord: Codable, Hashable, Sendable {
    public struct Event: Codable, Hashable, Sendable {
        /// Milliseconds since 1970.
        public var at: Int64
        public var what: String
        public init(at: Int64, what: String) {
            self.at = at
            self.what = what
        }
    }

    public enum Phase: String, Codable, Hashable, Sendable {
        case faulted, recovering, ended
    }

    public var id: String
    /// What the operator named (`node fr-1`, `country FR`, `coordinator c-fr`).
    public var target: [String]
    /// The storage nodes faulted, and the coordinators.
    public var nodes: [String]
    public var coordinators: [String]
    public var mode: FaultMode
    public var latencyMilliseconds: Int
    public var lossPercent: Int
    public var ttlSeconds: Int
    public var margin: Int
    public var dataShards: Int
    /// The cluster's `repair_after`: a drill shorter than it should start no repair.
    public var repairAfterSeconds: Int
    public var phase: Phase
    /// Milliseconds since 1970.
    public var startedAt: Int64
    /// When the fault is lifted at the latest.
    public var liftAt: Int64
    /// When the nodes' own safety net lifts their fault (`liftAt` plus a grace).
    public var nodeFaultUntil: Int64
    /// The first time the cluster saw every drilled node down (nil: never, e.g. `slow`).
    public var detectedAt: Int64?
    /// The first time the leader counted a drilled node as lost (its shards rebuilt elsewhere).
    public var repairStartedAt: Int64?
    public var liftedAt: Int64?
    /// `ttl`, `stopped` or `aborted`.
    public var liftReason: String?
    public var abortReason: String?
    /// When every drilled node answered again after the lift.
    public var backAt: Int64?
    /// When every segment had all its shards on healthy nodes again (during or after).
    public var fullRedundancyAt: Int64?
    public var endedAt: Int64?
    /// Why it ended (`recovered`, or what did not recover in time).
    public var outcome: String?
    /// Set by `drill stop`: the leader lifts the fault at its next step.
    public var stopRequested: Bool
    /// Fewest healthy shards of any segment the leader saw while the fault was on.
    public var lowestHealthySeen: Int?
    /// Segments without all their shards on healthy nodes, at the last check.
    public var degradedSegments: Int
    public var segments: Int
    /// Repair during the drill, from the leader's repair counters (one leader term: a
    /// leader change restarts them, `leaderChanged` says so).
    public var segmentsRebuilt: Int
    public var bytesRebuilt: Int64
    public var placementDebtCreated: Int
    /// Segments in placement debt at the start and at the last check.
    public var debtSegmentsAtStart: Int
    public var debtSegments: Int
    public var leaderChanged: Bool
    /// Repair counters when the fault went on, or when the current leader's term began (for
    /// the differences above), and what earlier terms counted.
    public var baseline: Baseline
    public var carried: Baseline?
    public var events: [Event]

    public struct Baseline: Codable, Hashable, Sendable {
        public var epoch: Int64
        public var segmentsRepaired: Int
        public var bytesDone: Int64
        public var placementDebtCreated: Int
        public init(epoch: Int64, segmentsRepaired: Int, bytesDone: Int64, placementDebtCreated: Int) {
            self.epoch = epoch
            self.segmentsRepaired = segmentsRepaired
            self.bytesDone = bytesDone
            self.placementDebtCreated = placementDebtCreated
        }
    }

    public init(
        id: String, target: [String], nodes: [String], coordinators: [String], mode: FaultMode, latencyMilliseconds: Int, lossPercent: Int,
        ttlSeconds: Int, margin: Int, dataShards: Int, repairAfterSeconds: Int, startedAt: Int64, baseline: Baseline
    ) {
        self.id = id
        self.target = target
        self.nodes = nodes
        self.coordinators = coordinators
        self.mode = mode
        self.latencyMilliseconds = latencyMilliseconds
        self.lossPercent = lossPercent
        self.ttlSeconds = ttlSeconds
        self.margin = margin
        self.dataShards = dataShards
        self.repairAfterSeconds = repairAfterSeconds
        phase = .faulted
        self.startedAt = startedAt
        liftAt = startedAt + Int64(ttlSeconds) * 1000
        nodeFaultUntil = liftAt + 60_000
        stopRequested = false
        degradedSegments = 0
        segments = 0
        segmentsRebuilt = 0
        bytesRebuilt = 0
        placementDebtCreated = 0
        debtSegmentsAtStart = 0
        debtSegments = 0
        leaderChanged = false
        self.baseline = baseline
        events = []
    }

    /// Whether the fault is on for this coordinator (by id) at `now` (ms since 1970): never past
    /// `nodeFaultUntil`, even when no leader is left to lift it.
    public func faults(coordinator id: String, now: Int64) -> Bool { mode.injects && phase == .faulted && coordinators.contains(id) && now < nodeFaultUntil }
}

/// What a load generator saw (`coffre load --out FILE`), which `drill report --load FILE`
/// splits into before, during and after the drill.
public struct LoadRecord: Codable, Hashable, Sendable {
    public struct Operation: Codable, Hashable, Sendable {
        /// `put` or `get`.
        public var kind: String
        /// Milliseconds since 1970 when it started.
        public var at: Int64
        public var milliseconds: Double
        /// nil when it succeeded; its error code otherwise.
        public var error: String?
        public init(kind: String, at: Int64, milliseconds: Double, error: String?) {
            self.kind = kind
            self.at = at
            self.milliseconds = milliseconds
            self.error = error
        }
    }

    public var operations: [Operation]
    /// Files uploaded during the run, downloaded again at its end and compared.
    public var verified: Int
    /// Those that did not read back bit-exact (or at all), with why.
    public var verificationFailures: [String]

    public init(operations: [Operation], verified: Int, verificationFailures: [String]) {
        self.operations = operations
        self.verified = verified
        self.verificationFailures = verificationFailures
    }
}

/// Requests, errors and latency in one window of a load run.
public struct LoadWindow: Codable, Hashable, Sendable {
    public var name: String
    public var requests: Int
    public var errors: Int
    public var p50Milliseconds: Double?
    public var p99Milliseconds: Double?

    public init(name: String, operations: [LoadRecord.Operation]) {
        self.name = name
        requests = operations.count
        errors = operations.filter { $0.error != nil }.count
        let sorted = operations.filter { $0.error == nil }.map(\.milliseconds).sorted()
        func quantile(_ q: Double) -> Double? {
            guard !sorted.isEmpty else { return nil }
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)]
        }
        p50Milliseconds = quantile(0.5)
        p99Milliseconds = quantile(0.99)
    }

    /// The operations before the fault, while it was on, and after it was lifted.
    public static func split(_ load: LoadRecord, drill: DrillRecord) -> [LoadWindow] {
        let lifted = drill.liftedAt ?? Int64.max
        return [
            LoadWindow(name: "before", operations: load.operations.filter { $0.at < drill.startedAt }),
            LoadWindow(name: "during", operations: load.operations.filter { $0.at >= drill.startedAt && $0.at < lifted }),
            LoadWindow(name: "after", operations: load.operations.filter { $0.at >= lifted }),
        ]
    }
}
