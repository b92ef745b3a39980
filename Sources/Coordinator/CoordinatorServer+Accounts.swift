import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import HTTPTypes
import Hummingbird
import Metadata
import NodeClient

extension CoordinatorServer {
    func validUsername(_ name: String) throws -> String {
        let lower = name.lowercased()
        guard (1...64).contains(lower.utf8.count),
            lower.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x2d || $0 == 0x5f })
        else { throw APIError(.invalidArgument, "a username is 1...64 characters of a-z 0-9 . - _") }
        return lower
    }

    func decodeBinary(_ text: String, _ what: String, size: ClosedRange<Int>) throws -> [UInt8] {
        guard let bytes = Base64URL.decode(text), size.contains(bytes.count) else {
            throw APIError(.invalidArgument, "\(what) must be base64url of \(size.lowerBound)...\(size.upperBound) bytes")
        }
        return bytes
    }

    func prelogin(_ context: ServiceContext) async throws -> Response {
        let username = try validUsername(try context.parameters.require("username"))
        if let id = try await metadata.get(Keyspace.username(username)).map({ String(decoding: $0.value, as: UTF8.self) }),
            let (account, _) = try await read(AccountRecord.self, Keyspace.account(id))
        {
            return try jsonResponse(PreloginResponse(passwordSalt: account.passwordSalt, passwordParameters: account.passwordParameters))
        }
        // Unknown users get a stable made-up salt, so the answer does not tell who exists.
        let fake = Array(sha256Hex(Array(("coffre-prelogin/" + configuration.adminToken + "/" + username).utf8)).utf8.prefix(16))
        return try jsonResponse(PreloginResponse(passwordSalt: Base64URL.encode(fake), passwordParameters: Argon2Parameters(operations: 3, memoryBytes: 256 << 20)))
    }

    func register(_ request: Request, _ context: ServiceContext) async throws -> Response {
        try throttle([("register/" + context.clientAddress, Self.registrationRule)])
        let body = try await decodeBody(RegisterRequest.self, request)
        let username = try validUsername(body.username)
        let authKey = try decodeBinary(body.authKey, "authKey", size: 32...32)
        _ = try decodeBinary(body.passwordSalt, "passwordSalt", size: 16...16)
        let parameters = body.passwordParameters
        guard parameters.operations >= Limits.argon2OpsMin, parameters.memoryBytes >= Limits.argon2MemoryMin else {
            throw APIError(
                .weakParameters,
                "Argon2id parameters below the floor: at least \(Limits.argon2OpsMin) passes and \(ByteCount(Int64(Limits.argon2MemoryMin))), got \(parameters.operations) and \(parameters.memoryBytes) B")
        }
        // The ceiling every client enforces: parameters over it would lock the account's
        // owner out (no client would compute them) and make prelogin answer absurd work.
        guard parameters.operations <= Limits.argon2OpsMax, parameters.memoryBytes <= Limits.argon2MemoryMax else {
            throw APIError(
                .invalidArgument,
                "Argon2id parameters above the ceiling: at most \(Limits.argon2OpsMax) passes and \(ByteCount(Int64(Limits.argon2MemoryMax))), got \(parameters.operations) and \(parameters.memoryBytes) B")
        }
        try requireJSONObject(body.keyRecord, "keyRecord", bytes: 16_384)
        let id = randomToken(12)
        let salt = randomToken(16)
        let account = AccountRecord(
            id: id, username: username, authSalt: salt, authHash: sha256Hex(Array(salt.utf8) + authKey),
            passwordSalt: body.passwordSalt, passwordParameters: body.passwordParameters, keyRecord: body.keyRecord,
            quotaBytes: configuration.quotaBytesDefault, usedBytes: 0, createdAt: now())
        let committed = try await metadata.commit(
            if: [.absent(Keyspace.username(username))],
            then: [.put(Keyspace.username(username), Array(id.utf8)), .put(Keyspace.account(id), encode(account))])
        guard committed != nil else { throw APIError(.conflict, "username \(username) is taken") }
        logger.info("account registered", metadata: ["account.id": "\(id)"])
        return try jsonResponse(WhoAmIResponse(accountId: id, username: username, quotaBytes: account.quotaBytes, usedBytes: 0), status: .created)
    }

    func login(_ request: Request, _ context: ServiceContext) async throws -> Response {
        let body = try await decodeBody(LoginRequest.self, request)
        let username = try validUsername(body.username)
        try throttle([("login/name/" + username, Self.loginRuleByName), ("login/address/" + context.clientAddress, Self.loginRuleByAddress)])
        let authKey = try decodeBinary(body.authKey, "authKey", size: 32...32)
        let denied = APIError(.unauthenticated, "wrong username or password")
        guard let id = try await metadata.get(Keyspace.username(username)).map({ String(decoding: $0.value, as: UTF8.self) }),
            let (account, _) = try await read(AccountRecord.self, Keyspace.account(id))
        else { throw denied }
        let hash = sha256Hex(Array(account.authSalt.utf8) + authKey)
        guard constantTimeEqual(Array(hash.utf8), Array(account.authHash.utf8)) else { throw denied }
        // A suspended account still signs in: to read why (`whoami`), see its takedowns and
        // appeal them; everything else answers `account_suspended`.
        let token = randomToken()
        let expiresAt = now() + Int64(configuration.sessionLifetimeSeconds) * 1000
        try await metadata.put(Keyspace.session(tokenHash: sha256Hex(Array(token.utf8))), encode(SessionRecord(accountId: id, expiresAt: expiresAt)))
        return try jsonResponse(LoginResponse(token: token, accountId: id, keyRecord: account.keyRecord, expiresAt: expiresAt), status: .created)
    }

    static let loginRuleByName = RateLimiter.Rule(burst: Double(Limits.loginBurstPerAccount), perMinute: Double(Limits.loginsPerMinutePerAccount))
    static let loginRuleByAddress = RateLimiter.Rule(
        burst: Double(Limits.loginBurstPerAddress), perMinute: Double(Limits.loginsPerMinutePerAddress))
    static let registrationRule = RateLimiter.Rule(
        burst: Double(Limits.registrationBurstPerAddress), perMinute: Double(Limits.registrationsPerMinutePerAddress))

    /// Takes an attempt from each bucket named; 429 `rate_limited` with `Retry-After` when one
    /// is empty. (A password is tried by computing Argon2id on the client, but guessers must
    /// still be slowed down here.)
    func throttle(_ buckets: [(String, RateLimiter.Rule)]) throws {
        let time = now()
        let wait = attempts.withLock { limiter in buckets.compactMap { limiter.take($0.0, $0.1, now: time) }.max() }
        guard let wait else { return }
        var fields = HTTPFields()
        fields[.retryAfter] = String(wait)
        throw APIError(.rateLimited, "too many attempts: try again in \(wait) s", headers: fields)
    }

    /// The account behind the request's bearer token; `unauthenticated` otherwise.
    /// A suspended account is refused (`account_suspended`) unless `allowingSuspended` (what it
    /// may still do: read why, see and appeal its takedowns).
    func authenticate(_ request: Request, allowingSuspended: Bool = false) async throws -> (AccountRecord, Int64) {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw APIError(.unauthenticated, "missing bearer token")
        }
        let token = String(header.dropFirst("Bearer ".count))
        guard token.utf8.count <= 128, let session = try await session(sha256Hex(Array(token.utf8))), session.expiresAt > now()
        else { throw APIError(.unauthenticated, "unknown or expired token") }
        guard let account = try await read(AccountRecord.self, Keyspace.account(session.accountId)) else {
            throw APIError(.unauthenticated, "account is gone")
        }
        if !allowingSuspended { try refuseSuspended(account.0) }
        return account
    }

    /// A session record, from the cache or the metadata store (see `sessions`).
    func session(_ hash: String) async throws -> SessionRecord? {
        if let cached = sessions.withLock({ $0[hash] }) { return cached }
        guard let (session, _) = try await read(SessionRecord.self, Keyspace.session(tokenHash: hash)) else { return nil }
        sessions.withLock { cache in
            if cache.count >= Limits.sessionCacheMax {
                // Expired ones first; when all are live, start over (bounded, and rare).
                let time = now()
                cache = cache.filter { $0.value.expiresAt > time }
                if cache.count >= Limits.sessionCacheMax { cache.removeAll() }
            }
            cache[hash] = session
        }
        return session
    }

    func whoami(_ request: Request) async throws -> Response {
        let (account, _) = try await authenticate(request, allowingSuspended: true)
        return try jsonResponse(
            WhoAmIResponse(
                accountId: account.id, username: account.username, quotaBytes: account.quotaBytes, usedBytes: account.usedBytes,
                suspension: account.suspension, excludedCountries: account.excludedCountries, transfer: await transferUse(account)))
    }

    /// 401 `unauthenticated` without the cluster's admin token (compared in constant time).
    func requireAdmin(_ request: Request) throws {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw APIError(.unauthenticated, "the admin token is required (Authorization: Bearer TOKEN)")
        }
        guard constantTimeEqual(Array(header.utf8.dropFirst(7)), Array(configuration.adminToken.utf8)) else {
            throw APIError(.unauthenticated, "wrong admin token")
        }
    }

    func adminStatus(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let descriptors = objects.topology.descriptors()
        let nodes = zip(objects.topology.members, descriptors).map { member, node in
            ClusterStatus.Node(
                id: member.id.value, country: member.country.code, region: member.region, url: member.url, up: node.isUp,
                capacityBytes: node.capacityBytes, usedBytes: node.usedBytes)
        }
        var alarms: [String]
        do { alarms = try await metadata.alarms() } catch { alarms = ["cannot read the metadata store's alarms: \(error.message)"] }
        let leader = try? await election.leader()
        return try jsonResponse(ClusterStatus(
            coordinator: configuration.id, country: configuration.country,
            metadata: configuration.etcd.isEmpty ? "embedded" : "etcd (\(configuration.etcd.count) endpoints)",
            policy: "\(objects.policy.erasure), at most \(objects.policy.shardsPerCountryMax) shards per country", nodes: nodes,
            metadataAlarms: alarms.isEmpty ? nil : alarms, leader: leader?.coordinator))
    }

    func adminObject(_ request: Request, _ context: ServiceContext) async throws -> Response {
        try requireAdmin(request)
        return try jsonResponse(try await objects.manifest(try context.parameters.require("id")))
    }
}

extension CoordinatorServer {
    /// The leader's repair status as last published; on the leader itself, its live one.
    func adminRepairStatus(_ request: Request) async throws -> Response {
        try await leaderStatus(request, key: Keyspace.repairStatus, live: repair.status) { leader in
            RepairStatus(
                leader: leader?.coordinator, epoch: leader?.epoch ?? 0, budgetBytesPerSecond: configuration.repairBudgetBytesPerSecond,
                updatedAt: 0)
        }
    }

    /// The leader's garbage collector as last published; on the leader itself, its live one.
    func adminCollectorStatus(_ request: Request) async throws -> Response {
        try await leaderStatus(request, key: Keyspace.collectorStatus, live: collector.status) { leader in
            CollectorStatus(leader: leader?.coordinator, epoch: leader?.epoch ?? 0, graceSeconds: Int64(configuration.gcGraceSeconds), updatedAt: 0)
        }
    }

    /// The leader's scrub schedule as last published; on the leader itself, its live one.
    func adminScrubStatus(_ request: Request) async throws -> Response {
        try await leaderStatus(request, key: Keyspace.scrubStatus, live: scrub.status) { ScrubStatus(leader: $0?.coordinator, epoch: $0?.epoch ?? 0) }
    }

    /// The leader's rebalancer as last published; on the leader itself, its live one.
    func adminRebalanceStatus(_ request: Request) async throws -> Response {
        try await leaderStatus(request, key: Keyspace.rebalanceStatus, live: rebalance.status) { RebalanceStatus(leader: $0?.coordinator, epoch: $0?.epoch ?? 0) }
    }

    /// A leader service's status: its live one on the leader; elsewhere the one it last
    /// published, when the current leader published it; otherwise `empty` (a new leader that
    /// has not published yet, or nobody leads).
    private func leaderStatus<Status: LeaderPublished>(
        _ request: Request, key: String, live: () -> Status, empty: (LeaderRecord?) -> Status
    ) async throws -> Response {
        try requireAdmin(request)
        return try jsonResponse(try await leaderStatusValue(key: key, live: live, empty: empty))
    }

    func leaderStatusValue<Status: LeaderPublished>(key: String, live: () -> Status, empty: (LeaderRecord?) -> Status) async throws -> Status {
        if election.current != nil { return live() }
        let leader = try await election.leader()
        if let (status, _) = try await read(Status.self, key), status.leader == leader?.coordinator, status.epoch == leader?.epoch {
            return status
        }
        return empty(leader)
    }

    /// `DELETE /v1/admin/nodes/{node}`: the node leaves the cluster. Only once nothing is
    /// placed on it (a drain emptied it, or repair rebuilt its shards elsewhere) and it is
    /// being drained or down: `conflict` otherwise, with what is left. Its membership, disk
    /// and drain records go and a tombstone (`Keyspace.removed`) stays, so that no coordinator
    /// polls it, places on it or lets it announce itself again.
    func adminRemoveNode(_ request: Request, _ context: ServiceContext) async throws -> Response {
        try requireAdmin(request)
        let text = try context.parameters.require("node")
        guard let id = try? NodeID(text), objects.topology.member(id) != nil else { throw APIError(.notFound, "no node \(text)") }
        let placed = try await metadata.objectsPlaced(on: id, limit: Limits.metadataListPageMax)
        guard placed.isEmpty else {
            throw APIError(.conflict, "\(placed.count)\(placed.count == Limits.metadataListPageMax ? "+" : "") objects still have a shard on \(id): drain it first (coffre admin node drain \(id))")
        }
        let draining = try await metadata.get(Keyspace.drain(id)) != nil
        guard draining || !objects.topology.isUp(id) else {
            throw APIError(.conflict, "\(id) is up and not drained: drain it first, so that nothing new is placed there meanwhile")
        }
        let now = objects.clock.wallMillis()
        _ = try await metadata.commit(
            if: [],
            then: [
                .put(Keyspace.removed(id), Array(String(now).utf8)), .delete(Keyspace.member(id)), .delete(Keyspace.disk(id)),
                .delete(Keyspace.drain(id)),
            ])
        objects.topology.setRemoved(objects.topology.removed.union([id]))
        logger.notice("node removed", metadata: ["node.id": "\(id)"])
        return try jsonResponse(NodeRemoval(node: id.value, removedAt: now))
    }

    /// `PUT`: the node is drained (nothing new goes there, the leader moves its shards away);
    /// `DELETE`: the drain is cancelled between two moves. Both answer the node's drain
    /// record (`requestedAt` 0 when none).
    func adminDrain(_ request: Request, _ context: ServiceContext, drain: Bool) async throws -> Response {
        try requireAdmin(request)
        let text = try context.parameters.require("node")
        guard let id = try? NodeID(text), objects.topology.member(id) != nil else { throw APIError(.notFound, "no node \(text)") }
        guard drain else {
            try await metadata.delete(Keyspace.drain(id))
            return try jsonResponse(RebalanceStatus.Drain(node: id.value, requestedAt: 0, objectsLeft: 0))
        }
        let key = Keyspace.drain(id)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        _ = try await metadata.commit(if: [.absent(key)], then: [.put(key, Array(String(now).utf8))])
        let requestedAt = try await metadata.get(key).flatMap { Int64(String(decoding: $0.value, as: UTF8.self)) } ?? now
        let placed = try await metadata.objectsPlaced(on: id, limit: Limits.metadataListPageMax).count
        return try jsonResponse(RebalanceStatus.Drain(node: id.value, requestedAt: requestedAt, objectsLeft: placed), status: .accepted)
    }

    /// `?wait=true`: one whole pass over the node now, answered with what it found;
    /// otherwise the leader's schedule takes that node next (202).
    func adminScrubNode(_ request: Request, _ context: ServiceContext) async throws -> Response {
        try requireAdmin(request)
        let text = try context.parameters.require("node")
        guard let id = try? NodeID(text), let member = objects.topology.member(id) else { throw APIError(.notFound, "no node \(text)") }
        guard request.uri.queryParameters.get("wait") == "true" else {
            try await metadata.put(Keyspace.scrubRequest, Array(id.value.utf8))
            return try jsonResponse(ScrubReport(node: id.value), status: .accepted)
        }
        guard objects.topology.isUp(id) else { throw APIError(.unavailable, "node \(id) is down") }
        do {
            return try jsonResponse(try await objects.scrubNode(member))
        } catch let error as NodeClientError {
            throw APIError(error.code, error.message)
        }
    }

    /// Each country's state, nodes and segments at risk, as the leader decided them.
    func adminCountries(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        if let term = election.current { return try jsonResponse(CountryList(leader: term.coordinator, countries: repair.countryReports())) }
        let leader = try await election.leader()
        if let (list, _) = try await read(CountryList.self, Keyspace.countryStates), list.leader == leader?.coordinator {
            return try jsonResponse(list)
        }
        // No leader has decided yet: this coordinator's own view, without history.
        let byCountry = Dictionary(grouping: objects.topology.descriptors(), by: \.country)
        let reports = byCountry.keys.sorted().map { country in
            let nodes = byCountry[country]!
            let up = nodes.filter(\.isUp).count
            return CountryReport(
                country: country.code, state: Double(nodes.count - up) >= 0.5 * Double(nodes.count) ? "down" : "up", since: 0,
                nodesUp: up, nodesDown: nodes.count - up, segmentsAtRisk: 0)
        }
        return try jsonResponse(CountryList(leader: leader?.coordinator, countries: reports))
    }

    /// Sets repair's budget for the whole cluster (the leader reads it at its next scan).
    func adminRepairBudget(_ request: Request) async throws -> Response {
        try requireAdmin(request)
        let body = try await decodeBody(RepairBudgetRequest.self, request)
        guard body.bytesPerSecond >= 0, body.bytesPerSecond <= 1 << 40 else {
            throw APIError(.invalidArgument, "bytesPerSecond must be 0 (paused) ... 1 TiB/s, got \(body.bytesPerSecond)")
        }
        try await metadata.put(Keyspace.repairBudget, Array(String(body.bytesPerSecond).utf8))
        return try jsonResponse(body)
    }
}

/// An opaque client record (a key record, a link record) must be a JSON object of at most
/// `bytes` bytes: the server never reads inside it, but it stores and serves only that shape.
func requireJSONObject(_ text: String, _ what: String, bytes: Int) throws {
    guard text.utf8.count <= bytes else { throw APIError(.limitExceeded, "\(what) of \(text.utf8.count) bytes exceeds \(bytes)") }
    guard (try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any] else {
        throw APIError(.invalidArgument, "\(what) must be a JSON object (the client's record, as a string)")
    }
}

func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in 0..<a.count { difference |= a[i] ^ b[i] }
    return difference == 0
}
