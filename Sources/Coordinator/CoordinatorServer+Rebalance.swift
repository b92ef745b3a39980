import CoffreAPI
public import CoffreModel
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird
import Metadata
import Placement

extension Limits {
    /// Objects one rebalance dry run reads (their manifests): past it the report says it is
    /// partial.
    public static let rebalancePlanObjectsMax = 20_000
    /// Moves a dry run lists one by one (all are counted).
    public static let rebalancePlanMovesListed = 50
}

extension CoordinatorServer {
    /// `GET /v1/admin/rebalance/plan[?drain=ID...][&removeCountry=CC...][&spread=F]`: the rebalance
    /// planner over the cluster as it is (every manifest, up to a limit), with the nodes being
    /// drained, those asked for, and the nodes of removed countries treated as drained.
    /// Nothing changes: the same planner the rebalancer runs, as a dry run or a what-if.
    func adminRebalancePlan(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let query = request.uri.queryParameters
        var spread = 0.05
        if let text = query.get("spread") {
            guard let value = Double(text), (0.01...1).contains(value) else { throw APIError(.invalidArgument, "spread must be 0.01...1, got \(text)") }
            spread = value
        }
        let draining = objects.topology.draining.union(try namedNodes(request, nodes: "drain", countries: "removeCountry"))

        var report = RebalancePlanReport()
        let (segments, scanned, complete, _) = try await objects.everySegment(only: objects.policy.erasure)
        report.objectsScanned = scanned
        report.complete = complete

        let added = try hypotheticalNodes(request)
        let nodes = objects.topology.descriptors() + added
        report.added = added.isEmpty ? nil : added.map(\.id.value)
        let plan = RebalancePlanner(policy: objects.policy, spread: spread).plan(segments: segments, nodes: nodes, draining: draining)
        let budget = await metadata.repairBudget() ?? configuration.repairBudgetBytesPerSecond
        report.draining = draining.map(\.value).sorted()
        report.moves = plan.moves.count
        report.movesByReason = Dictionary(grouping: plan.moves, by: \.reason.rawValue).mapValues(\.count)
        report.bytes = plan.totalBytes
        report.bytesByCountryPair = plan.bytesByCountryPair
        report.lowestHealthyDuringMoves = plan.lowestHealthyDuringMoves
        report.budgetBytesPerSecond = budget
        report.estimatedSeconds = plan.moves.isEmpty || budget <= 0 ? nil : plan.estimatedSeconds(budget: budget)
        report.segmentsSkipped = plan.skipped.count
        report.skipped = plan.skipped.prefix(20).map { "\($0.objectId)/\($0.segment): \($0.reason)" }
        report.policyCanBeMet = Self.canMeetPolicy(objects.policy, nodes: nodes, draining: draining)
        report.firstMoves = plan.moves.prefix(Limits.rebalancePlanMovesListed).map {
            .init(objectId: $0.objectId, segment: $0.segment, shard: $0.shard, from: $0.from.value, to: $0.to.value, bytes: $0.bytes, reason: $0.reason.rawValue)
        }
        return try jsonResponse(report)
    }

    /// `POST /v1/admin/rebalance/start`: the leader runs passes over every manifest, moving
    /// shards for placement debt and skew, until a pass moves nothing. 409 when one runs.
    func adminRebalanceStart(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let body = try await decodeBody(RebalanceStartRequest.self, request)
        let spread = body.spread ?? 0.05
        guard (0.01...1).contains(spread) else { throw APIError(.invalidArgument, "spread must be 0.01...1, got \(spread)") }
        let job = RebalanceStatus.Job(startedAt: Int64(Date().timeIntervalSince1970 * 1000), spread: spread)
        guard try await metadata.commit(if: [.absent(Keyspace.rebalanceJob)], then: [.putJSON(Keyspace.rebalanceJob, job)]) != nil else {
            throw APIError(.conflict, "a rebalance is running (coffre admin rebalance status; cancel it first)")
        }
        return try jsonResponse(job, status: .accepted)
    }

    /// `POST /v1/admin/rebalance/cancel`: the running rebalance stops after the moves in hand
    /// (each is whole or not at all); 404 when none runs.
    func adminRebalanceCancel(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        guard let entry = try await metadata.get(Keyspace.rebalanceJob),
            let job = try? JSONDecoder().decode(RebalanceStatus.Job.self, from: Data(entry.value))
        else { throw APIError(.notFound, "no rebalance is running") }
        try await metadata.delete(Keyspace.rebalanceJob)
        return try jsonResponse(job)
    }

    /// `GET /v1/admin/drill/preflight?node=ID...&country=CC...[&margin=N]`: what a drill that
    /// takes these nodes (or a country's nodes) away would leave: the fewest healthy shards of
    /// any segment, and the segments under k + margin, for which the drill is refused.
    func adminDrillPreflight(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let query = request.uri.queryParameters
        let fault = try namedNodes(request, nodes: "node", countries: "country")
        var margin = objects.policy.margin
        if let text = query.get("margin") {
            guard let value = Int(text), (0...objects.policy.erasure.parityShards).contains(value) else {
                throw APIError(.invalidArgument, "margin must be 0...\(objects.policy.erasure.parityShards), got \(text)")
            }
            margin = value
        }
        let (segments, scanned, complete, _) = try await objects.everySegment()
        let k = objects.policy.erasure.dataShards
        let preflight = DrillPlanner.preflight(segments: segments, nodes: objects.topology.descriptors(), fault: fault, dataShards: k, margin: margin)
        return try jsonResponse(DrillPreflightReport(
            fault: fault.map(\.value).sorted(), dataShards: k, margin: margin, lowestHealthy: preflight.lowestHealthy, allowed: preflight.allowed,
            atRiskCount: preflight.atRiskCount,
            atRisk: preflight.atRisk.map { .init(objectId: $0.objectId, segment: $0.segment, healthy: $0.healthy) },
            segments: preflight.segments, objectsScanned: scanned, complete: complete))
    }

    /// Nodes a what-if adds (`addCountry=CC&addNodes=N[&addCapacity=BYTES]`): empty, up, with
    /// the given capacity or the median of the members'. None without `addCountry`.
    private func hypotheticalNodes(_ request: Request) throws -> [NodeDescriptor] {
        let query = request.uri.queryParameters
        guard let code = query.get("addCountry") else { return [] }
        guard let country = try? Country(String(code)) else { throw APIError(.invalidArgument, "addCountry: \(code) is not a country code") }
        let count = query.get("addNodes").flatMap { Int($0) } ?? 3
        guard (1...Limits.nodesMax).contains(count) else { throw APIError(.invalidArgument, "addNodes must be 1...\(Limits.nodesMax)") }
        let capacities = objects.topology.descriptors().map(\.capacityBytes).sorted()
        let capacity = try query.get("addCapacity").map { text -> Int64 in
            guard let value = Int64(text), value > 0 else { throw APIError(.invalidArgument, "addCapacity must be a positive number of bytes") }
            return value
        } ?? (capacities.isEmpty ? 1 << 40 : capacities[capacities.count / 2])
        return try (1...count).map { index in
            NodeDescriptor(
                id: try NodeID("\(country.code.lowercased())-new-\(index)"), country: country, region: "\(country.code.lowercased())-new",
                capacityBytes: capacity)
        }
    }

    /// The nodes a query names: by id (parameter `nodes`, repeatable) and by country (every
    /// member of each country in parameter `countries`).
    private func namedNodes(_ request: Request, nodes: String, countries: String) throws -> Set<NodeID> {
        let query = request.uri.queryParameters
        return try resolveNodes(ids: query.getAll(nodes).map { String($0) }, countries: query.getAll(countries).map { String($0) }, what: countries)
    }

    /// Nodes by id, and every member of each country. 404 for an unknown node or a country
    /// with none; 400 for a malformed code.
    func resolveNodes(ids: [String], countries: [String], what: String = "country") throws -> Set<NodeID> {
        var named = Set<NodeID>()
        for text in ids {
            guard let id = try? NodeID(text), objects.topology.member(id) != nil else { throw APIError(.notFound, "no node \(text)") }
            named.insert(id)
        }
        for text in countries {
            guard let country = try? Country(text) else { throw APIError(.invalidArgument, "\(what): \(text) is not a country code") }
            let members = objects.topology.members.filter { $0.country == country }
            guard !members.isEmpty else { throw APIError(.notFound, "no node in \(country)") }
            named.formUnion(members.map(\.id))
        }
        return named
    }

    /// Whether the nodes left can hold k + m shards of a segment within the country rule.
    static func canMeetPolicy(_ policy: PlacementPolicy, nodes: [NodeDescriptor], draining: Set<NodeID>) -> Bool {
        let left = nodes.filter { $0.isUp && !draining.contains($0.id) && !policy.excludedCountries.contains($0.country) }
        let perCountry = Dictionary(grouping: left, by: \.country).values.map { min($0.count, policy.shardsPerCountryMax) }
        return perCountry.reduce(0, +) >= policy.erasure.totalShards
    }
}
