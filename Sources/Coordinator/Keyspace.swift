public import CoffreModel
public import Metadata

/// Every key the coordinators keep in the metadata store, in one place.
///
/// Why one place: a key built in two files drifts (a prefix one way, a separator the other),
/// and the prefixes are the store's schema: what a listing, a watch or a repair scan depends
/// on. `Docs/architecture.md` ("Metadata") describes each one.
public enum Keyspace {
    // MARK: Accounts and sessions

    public static func account(_ id: String) -> String { "accounts/" + id }
    public static func username(_ name: String) -> String { "usernames/" + name }
    /// A session by the SHA-256 (hex) of its bearer token: the token itself is never stored.
    public static func session(tokenHash: String) -> String { "sessions/" + tokenHash }

    /// Bytes one coordinator served from an account's files in one transfer bucket (a
    /// thirtieth of the window; decimal). Only that coordinator writes it; any may delete it
    /// once the bucket left the window.
    public static func transfer(_ account: String, bucket: Int64, coordinator: String) -> String {
        "transfer/\(account)/" + String(format: "%020lld", bucket) + "/" + coordinator
    }
    public static func transfers(_ account: String) -> String { "transfer/\(account)/" }

    // MARK: Sharing with other users

    /// A folder shared by its owner with a recipient (both account ids).
    public static func share(owner: String, node: String, recipient: String) -> String { "shares/\(owner)/\(node)/\(recipient)" }
    public static func shares(owner: String) -> String { "shares/\(owner)/" }
    /// The recipient's index of what was shared with it -> the share's key.
    public static func sharedWith(_ recipient: String, owner: String, node: String) -> String { "sharedwith/\(recipient)/\(owner)/\(node)" }
    public static func sharedWith(_ recipient: String) -> String { "sharedwith/\(recipient)/" }
    /// A folder of the owner's whose key change is unfinished (started or due) -> empty.
    public static func keyChange(owner: String, node: String) -> String { "rekeys/\(owner)/\(node)" }
    public static func keyChanges(owner: String) -> String { "rekeys/\(owner)/" }

    // MARK: The tree

    public static func treeNode(_ account: String, _ node: String) -> String { "tree/\(account)/\(node)" }
    /// A node's entry in its parent's index; its value is a copy of the node's record.
    public static func child(_ account: String, _ parent: String, _ node: String) -> String {
        "children/\(account)/\(parent)/\(node)"
    }
    public static func children(_ account: String, _ parent: String) -> String { "children/\(account)/\(parent)/" }
    /// A child's name tag in its folder -> the child's id.
    public static func name(_ account: String, _ parent: String, _ tag: String) -> String { "names/\(account)/\(parent)/\(tag)" }

    /// A node in its owner's rubbish bin -> when it was put there (decimal milliseconds).
    public static func binEntry(_ account: String, _ node: String) -> String { "bin/\(account)/\(node)" }
    public static func bin(_ account: String) -> String { "bin/\(account)/" }
    /// The same, ordered by time for the leader's purge -> empty.
    public static func binOrder(_ trashedAt: Int64, _ account: String, _ node: String) -> String {
        "binorder/" + String(format: "%020lld", trashedAt) + "/\(account)/\(node)"
    }
    public static let binOrderAll = "binorder/"

    // MARK: Objects

    /// An object's manifest: changed only by compare-and-swap on its revision.
    public static func manifest(_ objectId: String) -> String { "objects/" + objectId }
    public static let manifests = "objects/"
    /// The index repair and drain walk: an entry per (node, object) with a shard there.
    public static func placement(_ node: NodeID, _ objectId: String) -> String { "placements/\(node)/\(objectId)" }
    public static func placements(_ node: NodeID) -> String { "placements/\(node)/" }
    public static let placementsAll = "placements/"
    /// An upload still running after a quarter of the collector's grace: its shards are not
    /// garbage while this is fresh (milliseconds since 1970 of the last refresh).
    public static func upload(_ objectId: String) -> String { "uploads/" + objectId }

    // MARK: Links

    public static func link(_ id: String) -> String { "links/" + id }
    public static func linkByOwner(_ account: String, _ id: String) -> String { "linksby/\(account)/\(id)" }
    public static func linksByOwner(_ account: String) -> String { "linksby/\(account)/" }

    // MARK: Takedowns and the transparency log

    /// A takedown (`CoordinatorServer.StoredTakedown`), in force or restored; kept for good.
    public static func takedown(_ id: String) -> String { "takedowns/" + id }
    public static let takedowns = "takedowns/"
    /// The owner's index of the takedowns of its links and files -> empty.
    public static func takedownOf(_ owner: String, _ id: String) -> String { "takedownsof/\(owner)/\(id)" }
    public static func takedownsOf(_ owner: String) -> String { "takedownsof/\(owner)/" }
    /// A file takedown in force -> its `TakedownNotice`: read before the file is served.
    public static func fileTakedown(_ owner: String, _ node: String, _ id: String) -> String { "takedownsby/\(owner)/\(node)/\(id)" }
    public static func fileTakedowns(_ owner: String, _ node: String) -> String { "takedownsby/\(owner)/\(node)/" }
    /// The log's entries by sequence number (20 digits, so that keys sort as numbers do).
    public static func transparencyEntry(_ seq: Int64) -> String { "transparency/" + String(format: "%020lld", seq) }
    public static let transparencyEntries = "transparency/"
    /// The last entry's sequence number and hash (`TransparencyHead`): every append is
    /// conditioned on it, so the chain has one order.
    public static let transparencyHead = "cluster/transparency-head"

    // MARK: The cluster

    /// A storage node's registration (address, labels), written when it announces itself.
    public static func member(_ node: NodeID) -> String { "members/\(node)" }
    public static let members = "members/"
    /// The incarnation of a node's shard store that placements on it refer to, recorded by
    /// the leader: a node reporting another one lost its shards (a replaced or wiped disk).
    public static func disk(_ node: NodeID) -> String { "disks/\(node)" }
    public static let disks = "disks/"
    /// A node an operator asked to empty (value: milliseconds since 1970 of the request):
    /// nothing new is placed on it and the leader moves its shards away.
    public static func drain(_ node: NodeID) -> String { "drains/\(node)" }
    /// A node removed after its drain (the value: when, ms since 1970): it is a member no more.
    public static func removed(_ node: NodeID) -> String { "removed/\(node)" }
    public static let removedAll = "removed/"
    public static let drains = "drains/"
    /// One coordinator's view of the nodes (when it last heard from each), under its lease:
    /// the leader merges them, so no single coordinator's view condemns a node.
    public static func observations(_ coordinator: String) -> String { "observations/" + coordinator }
    public static let observationsAll = "observations/"
    /// The leader's record, under its lease; its revision fences every decision it makes.
    public static let leader = "cluster/leader"
    /// The last epoch handed out; a new leader takes the next one.
    public static let leaderEpoch = "cluster/epoch"
    /// Repair's budget in bytes per second, set at run time by an operator.
    public static let repairBudget = "cluster/repair-budget"
    /// The leader's last published repair status, read by any coordinator.
    public static let repairStatus = "cluster/repair-status"
    /// The leader's last published garbage-collection status.
    public static let collectorStatus = "cluster/gc-status"
    /// The rebalance an operator started (`RebalanceStatus.Job`, JSON): where its pass is.
    public static let rebalanceJob = "cluster/rebalance-job"
    /// The leader's last published rebalancer status.
    public static let rebalanceStatus = "cluster/rebalance-status"
    /// The leader's last published scrub status.
    public static let scrubStatus = "cluster/scrub-status"
    /// A node an operator asked the scrub schedule to take next.
    public static let scrubRequest = "cluster/scrub-request"
    /// Country states, as the leader last decided them.
    public static let countryStates = "cluster/countries"
    /// The erasure scheme the cluster writes, once an operator set one (`ClusterPolicy`).
    public static let clusterPolicy = "cluster/policy"
    /// The running re-encoding job (`PolicyStatus.Job`) and the policy worker's status.
    public static let policyJob = "cluster/policy-job"
    public static let policyStatus = "cluster/policy-status"
    /// The running failover drill, or the last one (`DrillRecord`).
    public static let drill = "cluster/drill"
    /// Shards that a read or a scrub found corrupt or missing: `suspects/NODE/OBJECT/SEG/SHARD`.
    public static func suspect(_ node: NodeID, _ objectId: String, segment: Int, shard: Int) -> String {
        "suspects/\(node)/\(objectId)/\(segment)/\(shard)"
    }
    public static let suspects = "suspects/"
}

extension MetadataStore {
    /// The objects the placement index puts on `node` (object id -> its entry), at least
    /// `limit` of them when there are that many (whole pages are read).
    func objectsPlaced(on node: NodeID, limit: Int) async throws(CoordinatorError) -> [String: MetadataEntry] {
        var found: [String: MetadataEntry] = [:]
        var after: String?
        repeat {
            let page: [MetadataEntry]
            do { page = try await list(prefix: Keyspace.placements(node), after: after, limit: min(limit, Limits.metadataListPageMax)) } catch {
                throw CoordinatorError(error.code, error.message)
            }
            for entry in page { found[String(entry.key.dropFirst(Keyspace.placements(node).count))] = entry }
            after = page.count == min(limit, Limits.metadataListPageMax) ? page.last?.key : nil
        } while after != nil && found.count < limit
        return found
    }

    /// Entries under a prefix whose keys end in a node id (`disks/`, `drains/`), by node.
    func byNode(_ prefix: String) async throws(MetadataError) -> [NodeID: MetadataEntry] {
        var entries: [NodeID: MetadataEntry] = [:]
        for entry in try await list(prefix: prefix) {
            guard let node = try? NodeID(String(entry.key.dropFirst(prefix.count))) else { continue }
            entries[node] = entry
        }
        return entries
    }

    /// The repair budget an operator set (`Keyspace.repairBudget`), shared by repair and the
    /// rebalancer; nil when none is set or it cannot be read.
    func repairBudget() async -> Int64? {
        guard let entry = try? await get(Keyspace.repairBudget) else { return nil }
        return Int64(String(decoding: entry.value, as: UTF8.self))
    }

    /// Applies unconditional mutations in transactions of at most
    /// `Limits.metadataTransactionOperationsMax`: for index entries that may be written
    /// before the commit they describe (a stray entry is harmless: whoever follows it reads
    /// the manifest) or removed after it.
    public func applyInChunks(_ mutations: [MetadataMutation]) async throws(MetadataError) {
        var rest = mutations[...]
        while !rest.isEmpty {
            let chunk = rest.prefix(Limits.metadataTransactionOperationsMax)
            rest = rest.dropFirst(chunk.count)
            _ = try await commit(if: [], then: Array(chunk))
        }
    }
}
