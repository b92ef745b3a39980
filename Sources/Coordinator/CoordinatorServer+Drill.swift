import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird
import Metadata
import Placement

extension CoordinatorServer {
    /// `POST /v1/admin/drill/start` (body: `DrillStartRequest`): checks the request and the
    /// pre-flight (412 `drill_refused` when a segment would fall under k + margin), then
    /// records the drill; the leader puts the fault on at its next step. 409 while another
    /// drill has not ended.
    func adminDrillStart(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let body = try await decodeBody(DrillStartRequest.self, request, limit: 64 << 10)
        guard (1...Limits.drillSecondsMax).contains(body.ttlSeconds) else {
            throw APIError(.invalidArgument, "ttl must be 1...\(Limits.drillSecondsMax) s, got \(body.ttlSeconds)")
        }
        let parity = objects.policy.erasure.parityShards
        let margin = body.margin ?? objects.policy.margin
        guard (0...parity).contains(margin) else { throw APIError(.invalidArgument, "margin must be 0...\(parity), got \(margin)") }
        let latency = body.latencyMilliseconds ?? (body.mode == .slow ? 500 : 0)
        let loss = body.lossPercent ?? 0
        guard (0...60_000).contains(latency), (0...100).contains(loss) else {
            throw APIError(.invalidArgument, "latency must be 0...60000 ms and loss 0...100 %, got \(latency) ms and \(loss) %")
        }
        let nodes = try resolveNodes(ids: body.nodes, countries: body.countries)
        let coordinators = try await resolveCoordinators(body.coordinators)
        guard !nodes.isEmpty || !coordinators.isEmpty else { throw APIError(.invalidArgument, "name a node, a country or a coordinator") }

        let existing = try await DrillWorker.read(metadata)
        if let (running, _) = existing, running.phase != .ended {
            throw APIError(.conflict, "drill \(running.id) is \(running.phase.rawValue) (coffre admin drill status; drill stop ends its fault)")
        }
        let (segments, _, complete, debt) = try await objects.everySegment()
        let k = objects.policy.erasure.dataShards
        let preflight = DrillPlanner.preflight(segments: segments, nodes: objects.topology.descriptors(), fault: nodes, dataShards: k, margin: margin)
        guard preflight.allowed else {
            let example = preflight.atRisk.first.map { ", e.g. \($0.objectId) segment \($0.segment) would keep \($0.healthy)" } ?? ""
            throw APIError(
                .drillRefused,
                "\(preflight.atRiskCount) segments would fall under k + margin = \(k + margin) healthy shards\(example) (coffre admin drill preflight)")
        }
        let now = objects.clock.wallMillis()
        let target =
            body.nodes.map { "node \($0)" } + body.countries.map { "country \($0.uppercased())" } + body.coordinators.map { "coordinator \($0)" }
        var record = DrillRecord(
            id: "drill-\(now)", target: target, nodes: nodes.map(\.value).sorted(), coordinators: coordinators, mode: body.mode,
            latencyMilliseconds: body.mode == .slow ? latency : 0, lossPercent: body.mode == .slow ? loss : 0, ttlSeconds: body.ttlSeconds,
            margin: margin, dataShards: k, repairAfterSeconds: configuration.repairAfterSeconds, startedAt: now,
            baseline: .init(epoch: 0, segmentsRepaired: 0, bytesDone: 0, placementDebtCreated: 0))
        record.segments = preflight.segments
        record.lowestHealthySeen = preflight.lowestHealthy
        record.debtSegmentsAtStart = debt
        record.debtSegments = debt
        DrillProgress.log(
            &record, now,
            "started: \(body.mode.rawValue) \(target.joined(separator: ", ")) for at most \(body.ttlSeconds) s; pre-flight: lowest healthy "
                + "\(preflight.lowestHealthy.map(String.init) ?? "-") of k = \(k) + margin \(margin)" + (complete ? "" : " (partial check)"))
        let condition: MetadataCondition = existing.map { .revision(Keyspace.drill, $0.1.modRevision) } ?? .absent(Keyspace.drill)
        guard try await metadata.commit(if: [condition], then: [.putJSON(Keyspace.drill, record)]) != nil else {
            throw APIError(.conflict, "another drill was started meanwhile (coffre admin drill status)")
        }
        logger.notice("drill started", metadata: ["drill.id": "\(record.id)", "drill.target": "\(target.joined(separator: ", "))"])
        return try jsonResponse(record, status: .accepted)
    }

    /// `POST /v1/admin/drill/stop`: the leader lifts the fault at its next step. 404 when no
    /// drill's fault is on.
    func adminDrillStop(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        for _ in 0..<5 {
            guard let (record, entry) = try await DrillWorker.read(metadata), record.phase == .faulted else {
                throw APIError(.notFound, "no drill's fault is on (coffre admin drill status)")
            }
            var stopping = record
            stopping.stopRequested = true
            if try await metadata.commit(if: [.revision(Keyspace.drill, entry.modRevision)], then: [.putJSON(Keyspace.drill, stopping)]) != nil {
                return try jsonResponse(stopping, status: .accepted)
            }
        }
        throw APIError(.conflict, "the drill kept changing; try again")
    }

    /// `GET /v1/admin/drill`: the running drill, or the last one.
    func adminDrill(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        guard let (record, _) = try await DrillWorker.read(metadata) else { throw APIError(.notFound, "no drill has run on this cluster") }
        return try jsonResponse(record)
    }

    /// Coordinators by id or by country code, among those publishing node observations now;
    /// at least one must stay out of the drill (someone must lead it and serve).
    private func resolveCoordinators(_ names: [String]) async throws -> [String] {
        guard !names.isEmpty else { return [] }
        let now = objects.clock.wallMillis()
        let live = try await metadata.list(prefix: Keyspace.observationsAll).compactMap { entry -> NodeObservations? in
            guard let view = try? JSONDecoder().decode(NodeObservations.self, from: Data(entry.value)),
                now - view.writtenAt < Int64(configuration.downAfterSeconds) * 1000 * 3
            else { return nil }
            return view
        }
        var chosen = Set<String>()
        for name in names {
            let matches = live.filter { $0.coordinator == name || $0.country?.uppercased() == name.uppercased() }.map(\.coordinator)
            guard !matches.isEmpty else { throw APIError(.notFound, "no live coordinator \(name) (by id or country code)") }
            chosen.formUnion(matches)
        }
        guard chosen.count < Set(live.map(\.coordinator)).count else {
            throw APIError(.drillRefused, "a drill must leave at least one coordinator out of its fault: it leads the drill and lifts it")
        }
        return chosen.sorted()
    }
}
