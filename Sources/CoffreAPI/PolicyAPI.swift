/// `POST /v1/admin/policy`: the erasure scheme the cluster writes from now on; existing
/// segments are re-encoded by a job.
public struct PolicyChangeRequest: Codable, Hashable, Sendable {
    public var k: Int
    public var m: Int
    public init(k: Int, m: Int) {
        self.k = k
        self.m = m
    }
}

/// The cluster's erasure scheme as operators set it (`cluster/policy`); until one is set, each
/// coordinator's configuration says.
public struct ClusterPolicy: Codable, Hashable, Sendable {
    public var k: Int
    public var m: Int
    /// Milliseconds since 1970 when it was set.
    public var setAt: Int64
    public init(k: Int, m: Int, setAt: Int64) {
        self.k = k
        self.m = m
        self.setAt = setAt
    }
}

/// `GET /v1/admin/policy`: the scheme new objects get, the re-encoding job, and the leader's
/// policy worker as it last published itself. Key names are part of the API.
public struct PolicyStatus: LeaderPublished, Hashable {
    /// A re-encoding job (`cluster/policy-job`): passes over every manifest until a pass finds
    /// no segment in another scheme.
    public struct Job: Codable, Hashable, Sendable {
        public var k: Int
        public var m: Int
        public var startedAt: Int64
        /// Passes so far (the first is 1).
        public var pass: Int
        /// The last object of this pass looked at (nil: the pass starts).
        public var cursor: String?
        /// Objects this pass found in another scheme (re-encoded or not): a pass with none ends
        /// the job.
        public var foundThisPass: Int

        public init(k: Int, m: Int, startedAt: Int64) {
            self.k = k
            self.m = m
            self.startedAt = startedAt
            pass = 1
            cursor = nil
            foundThisPass = 0
        }
    }

    public var leader: String?
    public var epoch: Int64
    public var job: Job?
    public var lastJobFinishedAt: Int64?
    public var objectsReencoded: Int = 0
    public var segmentsReencoded: Int = 0
    public var bytesRead: Int64 = 0
    public var bytesWritten: Int64 = 0
    /// Re-encodings refused at commit (the manifest or the leadership changed) or failed; the
    /// next pass tries them again.
    public var refused: Int = 0
    public var failed: Int = 0
    public var rateBytesPerSecond: Double = 0
    public var lastError: String?
    public var updatedAt: Int64 = 0
    /// Filled in by the coordinator that answers: the scheme new objects get, and segments by
    /// scheme over every manifest (up to a limit).
    public var policy: String?
    public var segmentsByScheme: [String: Int]?

    public init(leader: String?, epoch: Int64) {
        self.leader = leader
        self.epoch = epoch
    }
}

/// `GET /v1/admin/policy/plan?k=K&m=M`: what changing the scheme would do (nothing changes).
public struct PolicyPlanReport: Codable, Hashable, Sendable {
    public var current: String
    public var target: String
    public var objects: Int
    /// Segments in another scheme than the target's, to be re-encoded.
    public var segmentsToReencode: Int
    /// Read k shards, write k' + m' shards, per segment re-encoded.
    public var bytesToRead: Int64
    public var bytesToWrite: Int64
    /// Shard bytes stored now, and once every segment is in the target scheme.
    public var storedBytesNow: Int64
    public var storedBytesAfter: Int64
    public var budgetBytesPerSecond: Int64
    public var estimatedSeconds: Double?
    /// The nodes up can hold k' + m' shards of a segment within the country rule.
    public var policyCanBeMet: Bool
    /// Healthy shards beyond k of the riskiest segment: re-encoding keeps every old shard until
    /// its segment's swap, so redundancy never drops below today's during the job.
    public var lowestHealthy: Int?
    public var objectsScanned: Int
    public var complete: Bool

    public init(
        current: String, target: String, objects: Int, segmentsToReencode: Int, bytesToRead: Int64, bytesToWrite: Int64, storedBytesNow: Int64,
        storedBytesAfter: Int64, budgetBytesPerSecond: Int64, estimatedSeconds: Double?, policyCanBeMet: Bool, lowestHealthy: Int?,
        objectsScanned: Int, complete: Bool
    ) {
        self.current = current
        self.target = target
        self.objects = objects
        self.segmentsToReencode = segmentsToReencode
        self.bytesToRead = bytesToRead
        self.bytesToWrite = bytesToWrite
        self.storedBytesNow = storedBytesNow
        self.storedBytesAfter = storedBytesAfter
        self.budgetBytesPerSecond = budgetBytesPerSecond
        self.estimatedSeconds = estimatedSeconds
        self.policyCanBeMet = policyCanBeMet
        self.lowestHealthy = lowestHealthy
        self.objectsScanned = objectsScanned
        self.complete = complete
    }
}
