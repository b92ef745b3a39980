import ClusterTLS
import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird
import Metadata
import NIOCore

extension CoordinatorServer {
    /// The cluster listener's routes: mutual TLS, cluster certificates only.
    func makeClusterRouter() -> Router<ServiceContext> {
        let router = Router(context: ServiceContext.self)
        router.middlewares.add(RequestMetricsMiddleware<ServiceContext>(metrics: metrics))
        router.middlewares.add(ErrorMiddleware<ServiceContext>())
        router.middlewares.add(RequestsInFlightMiddleware<ServiceContext>(counter: connections))
        router.post("/v1/cluster/announce") { [self] request, context in try await announce(request, context) }
        return router
    }

    /// A storage node announces itself: it becomes a member (`Keyspace.member`), which every
    /// coordinator loads at its next health round. The node's certificate must name it
    /// (`coffre://node/ID`): a node cannot register, or move, another.
    func announce(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let body = try await decodeBody(NodeAnnouncement.self, request)
        guard let identity = await peers.identity(of: context.connection) else { throw APIError(.forbidden, "the client certificate names no cluster identity (coffre://node/ID)") }
        guard identity.role == .node, identity.id == body.node else {
            throw APIError(.forbidden, "a certificate of \(identity) cannot announce node \(body.node)")
        }
        let id: NodeID
        let country: Country
        do {
            id = try NodeID(body.node)
            country = try Country(body.country)
        } catch {
            throw APIError(.invalidArgument, error.message)
        }
        guard body.url.hasPrefix("https://"), body.url.utf8.count <= 256, (1...64).contains(body.region.utf8.count) else {
            throw APIError(.invalidArgument, "a node announces an https URL (at most 256 bytes) and a region of 1...64 bytes")
        }
        guard try await metadata.get(Keyspace.removed(id)) == nil else {
            throw APIError(.forbidden, "node \(id) was removed from the cluster (coffre admin node remove); a new disk joins under a new id")
        }
        let record = MemberRecord(node: id.value, country: country.code, region: body.region, url: body.url)
        let key = Keyspace.member(id)
        let existing = try await metadata.get(key)
        if let existing, (try? JSONDecoder().decode(MemberRecord.self, from: Data(existing.value))) == record {
            return try jsonResponse(record)
        }
        try await metadata.put(key, encode(record))
        objects.topology.update([ClusterTopology.Member(id: id, country: country, region: body.region, url: body.url)])
        logger.notice("node announced", metadata: ["node.id": "\(id)", "node.country": "\(country)", "node.url": "\(body.url)"])
        return try jsonResponse(record, status: existing == nil ? .created : .ok)
    }
}

/// What a storage node is, as the membership keeps it (`members/ID`).
public struct MemberRecord: Codable, Hashable, Sendable {
    public let node: String
    public let country: String
    public let region: String
    public let url: String
}

extension HealthMonitor {
    /// Members from the metadata store, added to (or updated in) the topology.
    func loadMembers() async throws {
        var members: [ClusterTopology.Member] = []
        for entry in try await metadata.list(prefix: Keyspace.members) {
            guard let record = try? JSONDecoder().decode(MemberRecord.self, from: Data(entry.value)),
                let id = try? NodeID(record.node), let country = try? Country(record.country)
            else { continue }
            members.append(.init(id: id, country: country, region: record.region, url: record.url))
        }
        topology.update(members)
    }
}
