/// One metric a daemon exports: its Prometheus name, kind, help text and label names.
///
/// Every metric of Coffre is declared here, once, so that names follow one convention
/// (`coffre_` prefix, base units, `_total` for counters, `_seconds`, `_bytes`), label sets
/// never differ between two places that record the same name (the Prometheus registry traps
/// on that), and `Docs/metrics.md` can be checked against the list.
public struct MetricFamily: Hashable, Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public let name: String
    public let kind: Kind
    public let help: String
    public let labels: [String]
    /// Histogram buckets, in the metric's unit (seconds for durations).
    public let buckets: [Double]

    init(_ name: String, _ kind: Kind, _ help: String, labels: [String] = [], buckets: [Double] = []) {
        self.name = name
        self.kind = kind
        self.help = help
        self.labels = labels
        self.buckets = buckets
    }

    /// Latency buckets from 1 ms to 60 s: shard and metadata requests are milliseconds, whole
    /// uploads of large files are seconds.
    static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
}

extension MetricFamily {
    // MARK: Both daemons

    public static let buildInfo = MetricFamily(
        "coffre_build_info", .gauge, "Always 1; the labels name the daemon's role, id and version.", labels: ["role", "id", "version"])
    public static let httpRequests = MetricFamily(
        "coffre_http_requests_total", .counter, "Requests answered, by route template, method and status code.",
        labels: ["route", "method", "code"])
    public static let httpRequestDuration = MetricFamily(
        "coffre_http_request_duration_seconds", .histogram,
        "Time from a request's head to the last byte of its answer written (or the answer dropped).",
        labels: ["route", "method"], buckets: latencyBuckets)
    public static let httpReceivedBytes = MetricFamily(
        "coffre_http_received_bytes_total", .counter, "Request body bytes read, by route template.", labels: ["route"])
    public static let httpSentBytes = MetricFamily(
        "coffre_http_sent_bytes_total", .counter, "Answer body bytes written, by route template.", labels: ["route"])
    public static let connectionsOpen = MetricFamily(
        "coffre_connections_open", .gauge, "TCP connections held now (every listener of the daemon).")
    public static let connectionsRefused = MetricFamily(
        "coffre_connections_refused_total", .counter, "Connections refused at the connection limits.")
    public static let connectionsCut = MetricFamily(
        "coffre_connections_cut_total", .counter,
        "Connections cut for being too slow, by stage: handshake (TLS), headers, body.", labels: ["stage"])
    public static let requestsInFlight = MetricFamily(
        "coffre_requests_in_flight", .gauge, "Requests being served now.")
    public static let requestsShed = MetricFamily(
        "coffre_requests_shed_total", .counter, "Requests answered 503 because requests_in_flight_max were in flight.")
    public static let certificateExpiry = MetricFamily(
        "coffre_certificate_expiry_timestamp_seconds", .gauge,
        "When a certificate the daemon uses expires (seconds since 1970): its own (role) and the cluster CA.",
        labels: ["certificate"])

    // MARK: Storage nodes

    public static let storeCapacity = MetricFamily(
        "coffre_store_capacity_bytes", .gauge, "Bytes the node offers to the cluster.")
    public static let storeUsed = MetricFamily(
        "coffre_store_used_bytes", .gauge, "Bytes of shards the node holds.")
    public static let storeShards = MetricFamily(
        "coffre_store_shards", .gauge, "Shards the node holds.")
    public static let storeOperations = MetricFamily(
        "coffre_store_operations_total", .counter,
        "Shard operations of the node, by operation (put, get, delete) and result (ok, not_found, corrupt, refused, error).",
        labels: ["operation", "result"])
    public static let storeBytes = MetricFamily(
        "coffre_store_bytes_total", .counter, "Shard bytes written (in) and read (out) by the node.", labels: ["direction"])

    // MARK: Coordinators: the data path

    public static let shardRequests = MetricFamily(
        "coffre_shard_requests_total", .counter,
        "Shard requests of this coordinator to a node, by node, operation (put, get, delete) and result (ok, not_found, error).",
        labels: ["node", "operation", "result"])
    public static let shardRequestDuration = MetricFamily(
        "coffre_shard_request_duration_seconds", .histogram, "Time of a shard request to a node, by operation.",
        labels: ["operation"], buckets: latencyBuckets)
    public static let shardHedges = MetricFamily(
        "coffre_shard_hedges_total", .counter,
        "Hedged shard reads: reads started because the first ones were slow (after hedge_after), by the node read.",
        labels: ["node"])
    public static let metadataRequestDuration = MetricFamily(
        "coffre_metadata_request_duration_seconds", .histogram, "Time of a metadata-store request, by operation.",
        labels: ["operation"], buckets: latencyBuckets)
    public static let metadataErrors = MetricFamily(
        "coffre_metadata_errors_total", .counter, "Metadata-store requests that failed (not a refused comparison), by operation.",
        labels: ["operation"])

    // MARK: Coordinators: the cluster as this coordinator sees it

    public static let nodeUp = MetricFamily(
        "coffre_node_up", .gauge, "1 while this coordinator hears from a storage node, else 0.", labels: ["node", "country", "region"])
    public static let nodeCapacity = MetricFamily(
        "coffre_node_capacity_bytes", .gauge, "A node's capacity as it last reported it.", labels: ["node"])
    public static let nodeUsed = MetricFamily(
        "coffre_node_used_bytes", .gauge, "A node's used bytes as it last reported them.", labels: ["node"])
    public static let countryState = MetricFamily(
        "coffre_country_state", .gauge,
        "1 for a country's state (up, down, quarantined, evacuated) as the leader last published it, 0 for the others.",
        labels: ["country", "state"])
    public static let countryNodesUp = MetricFamily(
        "coffre_country_nodes_up", .gauge, "Storage nodes of a country up, as the leader last published it.", labels: ["country"])
    public static let countryNodes = MetricFamily(
        "coffre_country_nodes", .gauge, "Storage nodes of a country, as the leader last published it.", labels: ["country"])
    public static let leader = MetricFamily(
        "coffre_leader", .gauge, "1 while this coordinator leads the background work, else 0.")
    public static let leaderEpoch = MetricFamily(
        "coffre_leader_epoch", .gauge, "The term of the leadership this coordinator holds (0 when it does not lead).")
    public static let policyShards = MetricFamily(
        "coffre_policy_shards", .gauge, "The erasure scheme new objects are written in: data (k), parity (m) and margin shards.",
        labels: ["kind"])

    // MARK: Coordinators: background work (the leader's; 0 on the others)

    public static let segmentsDegraded = MetricFamily(
        "coffre_segments_degraded", .gauge,
        "Segments known to miss shards (queued for repair), by their healthy shards (leader only).", labels: ["healthy_shards"])
    public static let segmentsAtRisk = MetricFamily(
        "coffre_segments_at_risk", .gauge, "Degraded segments with fewer than k + margin healthy shards (leader only).")
    public static let segmentsUnrepairable = MetricFamily(
        "coffre_segments_unrepairable", .gauge, "Segments with fewer than k healthy shards reachable now (leader only).")
    public static let repairQueue = MetricFamily(
        "coffre_repair_queued_segments", .gauge, "Segments waiting for repair or being repaired (leader only).")
    public static let repairRemaining = MetricFamily(
        "coffre_repair_remaining_bytes", .gauge, "Shard bytes the queued repairs will rebuild (leader only).")
    public static let repairRate = MetricFamily(
        "coffre_repair_rate_bytes_per_second", .gauge, "Shard bytes rebuilt per second over the last ten seconds (leader only).")
    public static let repairETA = MetricFamily(
        "coffre_repair_eta_seconds", .gauge, "Time to rebuild what is queued at the current rate (0 when nothing is; leader only).")
    public static let repairBudget = MetricFamily(
        "coffre_repair_budget_bytes_per_second", .gauge, "The repair budget (leader only).")
    public static let repairBytes = MetricFamily(
        "coffre_repair_bytes_total", .counter, "Shard bytes rebuilt by repair.")
    public static let repairSegments = MetricFamily(
        "coffre_repair_segments_total", .counter, "Segments repair finished, by result (repaired, failed, refused).", labels: ["result"])
    public static let gcShardsScanned = MetricFamily(
        "coffre_gc_scanned_shards_total", .counter, "Shards the garbage collector listed.")
    public static let gcShardsDeleted = MetricFamily(
        "coffre_gc_deleted_shards_total", .counter, "Unreferenced shards the garbage collector deleted.")
    public static let gcBytesReclaimed = MetricFamily(
        "coffre_gc_reclaimed_bytes_total", .counter, "Bytes of the shards the garbage collector deleted.")
    public static let gcPasses = MetricFamily(
        "coffre_gc_passes_total", .counter, "Full rounds of the garbage collector over every node.")
    public static let scrubBytes = MetricFamily(
        "coffre_scrub_verified_bytes_total", .counter, "Shard bytes whose checksums the scrub verified.")
    public static let scrubCorrupt = MetricFamily(
        "coffre_scrub_corrupt_shards_total", .counter, "Shards the scrub found corrupt or missing.")
    public static let scrubPasses = MetricFamily(
        "coffre_scrub_passes_total", .counter, "Full rounds of the scrub over every node.")
    public static let rebalanceBytes = MetricFamily(
        "coffre_rebalance_moved_bytes_total", .counter, "Shard bytes moved by rebalancing and draining.")
    public static let drainingNodes = MetricFamily(
        "coffre_draining_nodes", .gauge, "Nodes being drained (leader only).")

    /// Every family, in the order `Docs/metrics.md` lists them.
    public static let all: [MetricFamily] = [
        buildInfo, httpRequests, httpRequestDuration, httpReceivedBytes, httpSentBytes, connectionsOpen, connectionsRefused,
        connectionsCut, requestsInFlight, requestsShed, certificateExpiry,
        storeCapacity, storeUsed, storeShards, storeOperations, storeBytes,
        shardRequests, shardRequestDuration, shardHedges, metadataRequestDuration, metadataErrors,
        nodeUp, nodeCapacity, nodeUsed, countryState, countryNodesUp, countryNodes, leader, leaderEpoch, policyShards,
        segmentsDegraded, segmentsAtRisk, segmentsUnrepairable, repairQueue, repairRemaining, repairRate, repairETA, repairBudget,
        repairBytes, repairSegments, gcShardsScanned, gcShardsDeleted, gcBytesReclaimed, gcPasses, scrubBytes, scrubCorrupt,
        scrubPasses, rebalanceBytes, drainingNodes,
    ]

    /// The family of a name, for the metrics factory (swift-metrics gives only a label).
    static let byName: [String: MetricFamily] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}
