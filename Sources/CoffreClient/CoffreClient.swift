import AsyncHTTPClient
public import CoffreAPI
import ClusterTLS
public import CoffreModel
public import Encryption
import Foundation
import NIOCore
import NIOHTTP1
public import Sodium

/// The Coffre client library: everything the `coffre` CLI does, for other programs too.
///
/// It encrypts before anything leaves the process and decrypts after everything arrives: a
/// coordinator sees ciphertext, wrapped keys and encrypted attributes, never a name, a byte
/// of plaintext or a key. Requests go to the pinned coordinator, or to each of the profile's
/// coordinators in turn until one answers (failover between regions).
public final class CoffreClient: Sendable {
    public let profile: Profile
    /// Coordinators in the order they are tried.
    public let endpoints: [String]
    /// Where this client keeps the keys it pinned for other users (`ContactBook`).
    public let contactsFile: String
    let http: HTTPClient

    /// - Parameters:
    ///   - via: a country code: use that country's coordinator only.
    ///   - coordinator: a URL: use that coordinator only.
    ///   - first: a URL tried before the profile's coordinators (a share link's host).
    ///   - contactsFile: the pinned keys of other users (default: per profile, under
    ///     `$COFFRE_HOME/contacts`).
    public init(profile: Profile, via: String? = nil, coordinator: String? = nil, first: String? = nil, contactsFile: String? = nil) throws(ClientError) {
        self.profile = profile
        self.contactsFile = contactsFile ?? ContactBook.path(profile: profile.name)
        if let coordinator {
            endpoints = [coordinator]
        } else if let first {
            endpoints = [first] + profile.coordinators.map(\.url).filter { $0 != first }
        } else if let via {
            let matching = profile.coordinators.filter { $0.country.uppercased() == via.uppercased() }.map(\.url)
            guard !matching.isEmpty else {
                throw ClientError(.invalidArgument, "profile \(profile.name) has no coordinator in \(via.uppercased())")
            }
            endpoints = matching
        } else {
            endpoints = profile.coordinators.map(\.url)
        }
        guard !endpoints.isEmpty else { throw ClientError(.invalidArgument, "profile \(profile.name) lists no coordinator") }
        var configuration: HTTPClient.Configuration
        do {
            configuration = HTTPClient.Configuration(tlsConfiguration: try TLSSetup.client(ca: profile.ca))
        } catch {
            throw ClientError(.invalidArgument, error.message)
        }
        // HTTP/1.1 with a pool of connections: AsyncHTTPClient's HTTP/2 streams bulk bodies at
        // a fraction of the speed (26 against 197 MB/s measured, Docs/performance.md).
        configuration.httpVersion = .http1Only
        configuration.timeout.connect = .seconds(5)
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async throws { try await http.shutdown() }

    // MARK: - HTTP

    struct Answer {
        let status: UInt
        let headers: HTTPHeaders
        let body: ByteBuffer
    }

    /// Sends a request to the first coordinator that answers; errors become `ClientError`s
    /// with the server's code.
    func send(
        _ method: HTTPMethod, _ path: String, token: String? = nil, json: (any Encodable)? = nil,
        headers: [(String, String)] = [], body: (() throws -> HTTPClientRequest.Body)? = nil, limit: Int = 64 << 20,
        expect: Set<UInt> = [200, 201, 204, 206]
    ) async throws -> Answer {
        var failures: [String] = []
        for endpoint in endpoints {
            var request = HTTPClientRequest(url: endpoint + path)
            request.method = method
            if let token { request.headers.add(name: "authorization", value: "Bearer " + token) }
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let json {
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(json)))
            }
            // A streamed body is made anew for each coordinator tried.
            if let body { request.body = try body() }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: .minutes(30))
            } catch {
                failures.append("\(endpoint): \(error)")
                continue
            }
            let bytes = try await response.body.collect(upTo: limit)
            guard expect.contains(response.status.code) else {
                if let answer = try? JSONDecoder().decode(APIErrorBody.self, from: Data(bytes.readableBytesView)) {
                    throw ClientError(ErrorCode(answer.error.code), answer.error.message)
                }
                throw ClientError(.storageFailure, "\(endpoint) answered \(response.status.code) to \(method) \(path)")
            }
            return Answer(status: response.status.code, headers: response.headers, body: bytes)
        }
        throw ClientError(.unavailable, "no coordinator answered: \(failures.joined(separator: "; "))")
    }

    func decode<T: Decodable>(_ type: T.Type, _ answer: Answer) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(answer.body.readableBytesView))
        } catch {
            throw ClientError(.storageFailure, "unreadable \(type) from the coordinator: \(error)")
        }
    }

    // MARK: - Accounts

    /// Creates an account. The password never leaves this process: the server gets an
    /// authentication key derived from it, and the master key wrapped under another.
    /// - Returns: the recovery key, to show the user once.
    public func register(username: String, password: String, parameters: Argon2id.Parameters = .recommended) async throws -> RecoveryKey {
        let created = try AccountKeys.create(accountId: username.lowercased(), password: password, parameters: parameters)
        let request = RegisterRequest(
            username: username, authKey: Base64URL.encode(created.authenticationKey.bytes),
            passwordSalt: Base64URL.encode(created.record.passwordSalt),
            passwordParameters: Argon2Parameters(operations: parameters.operations, memoryBytes: parameters.memoryBytes),
            keyRecord: String(decoding: try JSONEncoder().encode(created.record), as: UTF8.self))
        _ = try await send(.POST, "/v1/accounts", json: request)
        return created.recoveryKey
    }

    /// Logs in: fetches the salt, derives the keys, proves the authentication key, unwraps
    /// the master key.
    public func login(username: String, password: String) async throws -> Session {
        let prelogin = try decode(PreloginResponse.self, try await send(.GET, "/v1/prelogin/" + username.lowercased()))
        guard let salt = Base64URL.decode(prelogin.passwordSalt) else { throw ClientError(.storageFailure, "bad salt from the server") }
        let parameters = Argon2id.Parameters(operations: prelogin.passwordParameters.operations, memoryBytes: prelogin.passwordParameters.memoryBytes)
        let keys = try PasswordKeys.derive(password: password, salt: salt, parameters: parameters)
        let answer = try decode(LoginResponse.self, try await send(.POST, "/v1/sessions", json: LoginRequest(username: username, authKey: Base64URL.encode(keys.authenticationKey.bytes))))
        let record = try JSONDecoder().decode(AccountKeyRecord.self, from: Data(answer.keyRecord.utf8))
        let master = try AccountKeys.unlock(record, password: password)
        let session = Session(username: username.lowercased(), accountId: answer.accountId, token: answer.token, expiresAt: answer.expiresAt, masterKey: Base64URL.encode(master.bytes))
        // The public keys other users pin to share with this account (published once; the
        // server holding other keys for it is worth stopping for).
        do {
            try await publishKeys(session)
        } catch let error as ClientError where error.code == .conflict {
            throw ClientError(.signatureInvalid, "the server holds other public keys for \(session.username) than this account's: \(error.message)")
        }
        return session
    }

    public func whoami(_ session: Session) async throws -> WhoAmIResponse {
        try decode(WhoAmIResponse.self, try await send(.GET, "/v1/whoami", token: session.token))
    }

    public func adminStatus() async throws -> ClusterStatus {
        try decode(ClusterStatus.self, try await send(.GET, "/v1/admin/status", token: try adminToken()))
    }

    public func adminObject(_ objectId: String) async throws -> ObjectManifest {
        try decode(ObjectManifest.self, try await send(.GET, "/v1/admin/objects/" + objectId, token: try adminToken()))
    }

    /// The leader's repair status (any coordinator answers).
    public func adminRepairStatus() async throws -> RepairStatus {
        try decode(RepairStatus.self, try await send(.GET, "/v1/admin/repair", token: try adminToken()))
    }

    /// Sets repair's budget for the whole cluster; 0 pauses repair.
    public func adminSetRepairBudget(bytesPerSecond: Int64) async throws {
        _ = try await send(.PUT, "/v1/admin/repair/budget", token: try adminToken(), json: RepairBudgetRequest(bytesPerSecond: bytesPerSecond))
    }

    /// The leader's garbage collector (any coordinator answers).
    public func adminCollectorStatus() async throws -> CollectorStatus {
        try decode(CollectorStatus.self, try await send(.GET, "/v1/admin/gc", token: try adminToken()))
    }

    /// The leader's scrub schedule.
    public func adminScrubStatus() async throws -> ScrubStatus {
        try decode(ScrubStatus.self, try await send(.GET, "/v1/admin/scrub", token: try adminToken()))
    }

    /// Scrubs a node: with `wait`, a whole pass now and its findings; otherwise the leader's
    /// schedule takes the node next.
    public func adminScrub(node: String, wait: Bool) async throws -> ScrubReport {
        try decode(ScrubReport.self, try await send(.POST, "/v1/admin/scrub/\(node)" + (wait ? "?wait=true" : ""), token: try adminToken()))
    }

    /// Each country's state as the leader decided it.
    public func adminCountries() async throws -> CountryList {
        try decode(CountryList.self, try await send(.GET, "/v1/admin/countries", token: try adminToken()))
    }

    /// The leader's rebalancer: nodes being drained, moves done, bytes moved.
    public func adminRebalanceStatus() async throws -> RebalanceStatus {
        try decode(RebalanceStatus.self, try await send(.GET, "/v1/admin/rebalance", token: try adminToken()))
    }

    /// What rebalancing would do (nothing changes): now, or with `drain` nodes drained and
    /// the nodes of `removeCountries` gone.
    public func adminRebalancePlan(
        drain: [String] = [], removeCountries: [String] = [], spread: Double? = nil, addCountry: (code: String, nodes: Int, capacity: Int64?)? = nil
    ) async throws -> RebalancePlanReport {
        var parts = drain.map { "drain=\($0)" } + removeCountries.map { "removeCountry=\($0)" } + (spread.map { ["spread=\($0)"] } ?? [])
        if let addCountry {
            parts += ["addCountry=\(addCountry.code)", "addNodes=\(addCountry.nodes)"] + (addCountry.capacity.map { ["addCapacity=\($0)"] } ?? [])
        }
        let query = parts.joined(separator: "&")
        return try decode(RebalancePlanReport.self, try await send(.GET, "/v1/admin/rebalance/plan" + (query.isEmpty ? "" : "?" + query), token: try adminToken()))
    }

    /// What a drill taking these nodes or countries away would leave (nothing changes).
    public func adminDrillPreflight(nodes: [String] = [], countries: [String] = [], margin: Int? = nil) async throws -> DrillPreflightReport {
        let query = (nodes.map { "node=\($0)" } + countries.map { "country=\($0)" } + (margin.map { ["margin=\($0)"] } ?? [])).joined(separator: "&")
        return try decode(DrillPreflightReport.self, try await send(.GET, "/v1/admin/drill/preflight?" + query, token: try adminToken()))
    }

    /// Starts a failover drill (refused with `drill_refused` when its pre-flight fails).
    public func adminDrillStart(_ drill: DrillStartRequest) async throws -> DrillRecord {
        try decode(DrillRecord.self, try await send(.POST, "/v1/admin/drill/start", token: try adminToken(), json: drill, expect: [202]))
    }

    /// Asks the leader to lift the running drill's fault.
    public func adminDrillStop() async throws -> DrillRecord {
        try decode(DrillRecord.self, try await send(.POST, "/v1/admin/drill/stop", token: try adminToken(), expect: [202]))
    }

    /// The running drill, or the last one.
    public func adminDrill() async throws -> DrillRecord {
        try decode(DrillRecord.self, try await send(.GET, "/v1/admin/drill", token: try adminToken()))
    }

    /// The scheme new objects get, segments by scheme, the re-encoding job.
    public func adminPolicy() async throws -> PolicyStatus {
        try decode(PolicyStatus.self, try await send(.GET, "/v1/admin/policy", token: try adminToken()))
    }

    /// Sets the cluster's erasure scheme; the leader re-encodes existing segments.
    public func adminSetPolicy(k: Int, m: Int) async throws -> PolicyStatus.Job {
        try decode(PolicyStatus.Job.self, try await send(.POST, "/v1/admin/policy", token: try adminToken(), json: PolicyChangeRequest(k: k, m: m), expect: [202]))
    }

    /// Stops the running re-encoding (the scheme stays set).
    public func adminPolicyCancel() async throws -> PolicyStatus.Job {
        try decode(PolicyStatus.Job.self, try await send(.POST, "/v1/admin/policy/cancel", token: try adminToken()))
    }

    /// What changing the scheme to RS(k, m) would do (nothing changes).
    public func adminPolicyPlan(k: Int, m: Int) async throws -> PolicyPlanReport {
        try decode(PolicyPlanReport.self, try await send(.GET, "/v1/admin/policy/plan?k=\(k)&m=\(m)", token: try adminToken()))
    }

    /// Starts a rebalance (placement debt, skew) that the leader runs until a pass moves nothing.
    public func adminRebalanceStart(spread: Double? = nil) async throws -> RebalanceStatus.Job {
        try decode(
            RebalanceStatus.Job.self,
            try await send(.POST, "/v1/admin/rebalance/start", token: try adminToken(), json: RebalanceStartRequest(spread: spread), expect: [202]))
    }

    /// Cancels the running rebalance after the moves in hand.
    public func adminRebalanceCancel() async throws -> RebalanceStatus.Job {
        try decode(RebalanceStatus.Job.self, try await send(.POST, "/v1/admin/rebalance/cancel", token: try adminToken()))
    }

    /// Removes a drained (or dead) node that holds nothing any more.
    public func adminRemoveNode(_ node: String) async throws -> NodeRemoval {
        try decode(NodeRemoval.self, try await send(.DELETE, "/v1/admin/nodes/\(node)", token: try adminToken()))
    }

    /// Drains a node (`drain: true`: nothing new goes there, its shards move away) or
    /// cancels a drain.
    public func adminDrain(node: String, drain: Bool) async throws -> RebalanceStatus.Drain {
        try decode(
            RebalanceStatus.Drain.self,
            try await send(drain ? .PUT : .DELETE, "/v1/admin/nodes/\(node)/drain", token: try adminToken(), expect: [200, 202]))
    }

    func adminToken() throws -> String {
        guard let token = profile.adminToken else { throw ClientError(.forbidden, "profile \(profile.name) has no admin token") }
        return token
    }
}
