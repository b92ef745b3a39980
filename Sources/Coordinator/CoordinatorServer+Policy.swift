import CoffreAPI
import CoffreModel
import ErasureCoding
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird
import Metadata
import Placement

extension CoordinatorServer {
    /// `GET /v1/admin/policy`: the scheme new objects get, segments by scheme, and the
    /// re-encoding job as the leader last published it.
    func adminPolicy(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        var status = try await leaderStatusValue(key: Keyspace.policyStatus, live: policies.status) {
            PolicyStatus(leader: $0?.coordinator, epoch: $0?.epoch ?? 0)
        }
        if status.job == nil, let (job, _) = try await read(PolicyStatus.Job.self, Keyspace.policyJob) { status.job = job }
        status.policy = objects.policy.erasure.description
        var schemes: [String: Int] = [:]
        _ = try await objects.everyManifest { manifest in
            for segment in manifest.segments { schemes[manifest.erasure(of: segment).description, default: 0] += 1 }
        }
        status.segmentsByScheme = schemes
        return try jsonResponse(status)
    }

    /// `POST /v1/admin/policy` (body `{k, m}`): new objects get this scheme at once on every
    /// coordinator (within one health poll) and the leader re-encodes the others. Refused
    /// when the nodes up cannot hold k + m shards under the country rule
    /// (`insufficient_nodes`), and while another re-encoding runs (`conflict`).
    func adminPolicyChange(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let body = try await decodeBody(PolicyChangeRequest.self, request, limit: 4096)
        let erasure: ErasurePolicy
        do { erasure = try ErasurePolicy(dataShards: body.k, parityShards: body.m) } catch { throw APIError(error.code, error.message) }
        let target = objects.policy.forSegments(of: erasure)
        guard target.erasure == erasure, target.shardsPerCountryMax >= 1 else {
            throw APIError(.invalidArgument, "\(erasure) leaves no shard per country under margin \(objects.policy.margin)")
        }
        guard Self.canMeetPolicy(target, nodes: objects.topology.descriptors(), draining: objects.topology.draining) else {
            throw APIError(
                .insufficientNodes,
                "the nodes up cannot hold \(erasure.totalShards) shards of a segment with at most \(target.shardsPerCountryMax) per country")
        }
        let now = objects.clock.wallMillis()
        let job = PolicyStatus.Job(k: body.k, m: body.m, startedAt: now)
        let committed = try await metadata.commit(
            if: [.absent(Keyspace.policyJob)],
            then: [.putJSON(Keyspace.clusterPolicy, ClusterPolicy(k: body.k, m: body.m, setAt: now)), .putJSON(Keyspace.policyJob, job)])
        guard committed != nil else {
            throw APIError(.conflict, "a re-encoding is running (coffre admin policy status; cancel it first)")
        }
        objects.setPolicy(target)
        logger.notice("erasure scheme set", metadata: ["policy": "\(erasure)"])
        return try jsonResponse(job, status: .accepted)
    }

    /// `POST /v1/admin/policy/cancel`: the re-encoding stops after the object in hand; the
    /// scheme stays set (new objects keep getting it), segments already re-encoded stay so, and
    /// the others stay readable and repaired in theirs. 404 when none runs.
    func adminPolicyCancel(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        guard let (job, _) = try await read(PolicyStatus.Job.self, Keyspace.policyJob) else { throw APIError(.notFound, "no re-encoding is running") }
        try await metadata.delete(Keyspace.policyJob)
        return try jsonResponse(job)
    }

    /// `GET /v1/admin/policy/plan?k=K&m=M`: what a change to that scheme would do (nothing
    /// changes): segments to re-encode, bytes read and written, storage before and after, time
    /// at the budget, whether the nodes can hold it.
    func adminPolicyPlan(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let query = request.uri.queryParameters
        guard let k = query.get("k").flatMap({ Int($0) }), let m = query.get("m").flatMap({ Int($0) }) else {
            throw APIError(.invalidArgument, "give k and m (coffre admin plan policy K+M)")
        }
        let erasure: ErasurePolicy
        do { erasure = try ErasurePolicy(dataShards: k, parityShards: m) } catch { throw APIError(error.code, error.message) }
        let target = objects.policy.forSegments(of: erasure)
        var segments = 0
        var read: Int64 = 0
        var written: Int64 = 0
        var storedNow: Int64 = 0
        var storedAfter: Int64 = 0
        var placements: [SegmentPlacement] = []
        let (objectsCount, complete) = try await objects.everyManifest { manifest in
            placements += ObjectStore.segmentPlacements(manifest)
            for segment in manifest.segments {
                let scheme = manifest.erasure(of: segment)
                storedNow += Int64(scheme.totalShards * segment.shardLength)
                let layout = SegmentLayout(policy: erasure, segmentLength: segment.length)
                storedAfter += Int64(layout.totalShardBytes)
                guard scheme != erasure else { continue }
                segments += 1
                read += Int64(scheme.dataShards * segment.shardLength)
                written += Int64(layout.totalShardBytes)
            }
        }
        let budget = await metadata.repairBudget() ?? configuration.repairBudgetBytesPerSecond
        let lowest = DrillPlanner.preflight(
            segments: placements, nodes: objects.topology.descriptors(), fault: [], dataShards: 0, margin: 0, listed: 0
        ).lowestHealthy
        return try jsonResponse(PolicyPlanReport(
            current: objects.policy.erasure.description, target: erasure.description, objects: objectsCount, segmentsToReencode: segments,
            bytesToRead: read, bytesToWrite: written, storedBytesNow: storedNow, storedBytesAfter: storedAfter, budgetBytesPerSecond: budget,
            estimatedSeconds: segments == 0 || budget <= 0 ? nil : Double(read + written) / Double(budget),
            policyCanBeMet: Self.canMeetPolicy(target, nodes: objects.topology.descriptors(), draining: objects.topology.draining),
            lowestHealthy: lowest, objectsScanned: objectsCount, complete: complete))
    }
}
