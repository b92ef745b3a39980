import CoffreAPI
import CoffreModel
import Encryption
import Foundation

/// One valid value of every record kind the fuzzer starts from.
enum RecordSeeds {
    static let key = Base64URL.encode([UInt8](repeating: 7, count: 61))

    static var treeNode: TreeNodeInfo {
        let json = """
            {"id":"n1","parent":"root","type":"file","attributes":"\(Base64URL.encode([1, 2, 3]))","wrappedKey":"\(key)",\
            "fileKey":"\(key)","length":1234,"objectId":"AAAAAAAAAAAAAAAAAAAAAA","createdAt":1790000000000,"nameTag":"abc",\
            "keyGeneration":2,"parentKeyGeneration":1,"keyPending":true}
            """
        return try! JSONDecoder().decode(TreeNodeInfo.self, from: Data(json.utf8))
    }

    static var link: LinkRecord { try! ShareLink.create(nodeKey: FuzzKeys.secret, nodeId: "n1").record }

    static var drill: DrillRecord {
        var record = DrillRecord(
            id: "d1", target: ["country FR"], nodes: ["fr-1", "fr-2"], coordinators: ["c-fr"], mode: .stop, latencyMilliseconds: 0,
            lossPercent: 0, ttlSeconds: 60, margin: 1, dataShards: 6, repairAfterSeconds: 2, startedAt: 1_790_000_000_000,
            baseline: DrillRecord.Baseline(epoch: 3, segmentsRepaired: 10, bytesDone: 1 << 20, placementDebtCreated: 0))
        record.detectedAt = 1_790_000_005_000
        record.events = [DrillRecord.Event(at: 1_790_000_005_000, what: "detected")]
        return record
    }

    static var rebalanceJob: RebalanceStatus.Job { RebalanceStatus.Job(startedAt: 1_790_000_000_000, spread: 0.1) }
    static var policyJob: PolicyStatus.Job { PolicyStatus.Job(k: 8, m: 4, startedAt: 1_790_000_000_000) }
    static var clusterPolicy: ClusterPolicy { ClusterPolicy(k: 6, m: 3, setAt: 1_790_000_000_000) }
    static var countries: CountryList {
        CountryList(leader: "c-fr", countries: [CountryReport(country: "FR", state: "up", since: 1, nodesUp: 3, nodesDown: 0, segmentsAtRisk: 0)])
    }
    static var repairStatus: RepairStatus { RepairStatus(leader: "c-fr", epoch: 4, budgetBytesPerSecond: 100_000_000, updatedAt: 1_790_000_000_000) }
    static var share: SealedShare {
        try! UserShare.seal(
            nodeKey: FuzzKeys.secret, nodeId: "node", from: FuzzKeys.alice, senderId: "alice", to: FuzzKeys.bob.publicIdentity, recipientId: "bob")
    }

    static var register: RegisterRequest {
        RegisterRequest(
            username: "alice", authKey: Base64URL.encode([UInt8](repeating: 1, count: 32)), passwordSalt: Base64URL.encode([UInt8](repeating: 2, count: 16)),
            passwordParameters: Argon2Parameters(operations: 3, memoryBytes: 256 << 20), keyRecord: "{\"accountId\":\"a\"}")
    }
    static var createFolder: CreateFolderRequest {
        CreateFolderRequest(id: "n2", parent: "root", attributes: Base64URL.encode([1, 2, 3]), wrappedKey: key, nameTag: "tag", parentKeyGeneration: 1)
    }
    static var updateNode: UpdateNodeRequest { UpdateNodeRequest(parent: "n2", attributes: nil, wrappedKey: key, nameTag: "tag2") }
    static var createLink: CreateLinkRequest {
        CreateLinkRequest(linkId: Base64URL.encode([UInt8](repeating: 3, count: 16)), nodeId: "n1", record: "{\"linkId\":\"x\"}", expiresAt: nil)
    }
    static var publicKeys: PublicKeys {
        PublicKeys(signingKey: Base64URL.encode([UInt8](repeating: 5, count: 32)), agreementKey: Base64URL.encode([UInt8](repeating: 6, count: 32)))
    }
    static var sealedText: SealedShareText {
        SealedShareText(
            encapsulatedKey: Base64URL.encode([UInt8](repeating: 1, count: 32)), ciphertext: Base64URL.encode([UInt8](repeating: 2, count: 48)),
            signature: Base64URL.encode([UInt8](repeating: 3, count: 64)))
    }
    static var createShare: CreateShareRequest { CreateShareRequest(nodeId: "n2", recipient: "bob", write: true, sealed: sealedText) }
    static var shareList: ShareList {
        let share = ShareInfo(
            ownerId: "a1", owner: "alice", nodeId: "n2", recipientId: "b1", recipient: "bob", write: false, sealed: sealedText,
            createdAt: 1_790_000_000_000, node: treeNode)
        return ShareList(outgoing: [share], incoming: [share])
    }
    static var rekeyFolder: RekeyFolderRequest {
        RekeyFolderRequest(
            attributes: Base64URL.encode([1, 2, 3]), wrappedKey: key, previousKey: key, shares: [.init(recipient: "bob", sealed: sealedText)],
            parent: "n3", parentKeyGeneration: 2)
    }
    static var takedown: TakedownInfo {
        let notice = TakedownNotice(
            id: "1764800000000-abcdefgh", target: "file", reason: .illegal, notice: "CASE-77", scope: TakedownScope(country: try? Country("FR")),
            createdAt: 1_764_800_000_000)
        return TakedownInfo(
            notice: notice, linkId: Base64URL.encode([UInt8](repeating: 3, count: 16)), nodeId: "n1", owner: "alice", restoredAt: 1_764_800_100_000,
            restoreNote: "withdrawn", appeals: [TakedownAppeal(at: 1_764_800_050_000, message: "mine")])
    }

    static var rekeyChildren: RekeyChildrenRequest {
        RekeyChildrenRequest(children: [.init(id: "n1", wrappedKey: key, nameTag: "tag", wrappedKeyWas: key)], keyGeneration: 3)
    }
    static var drillStart: DrillStartRequest { DrillStartRequest(countries: ["FR"], mode: .blackhole, ttlSeconds: 30, margin: 1) }
    static var rebalanceStart: RebalanceStartRequest { RebalanceStartRequest(spread: 0.05) }
}
