/// Wire types of the coordinator's client API (Docs/api.md). Binary fields are base64url
/// without padding; times are milliseconds since 1970.

public struct Argon2Parameters: Codable, Hashable, Sendable {
    public let operations: UInt64
    public let memoryBytes: UInt64
    public init(operations: UInt64, memoryBytes: UInt64) {
        self.operations = operations
        self.memoryBytes = memoryBytes
    }
}

/// `GET /v1/prelogin/{username}`: what a client needs to derive its keys.
public struct PreloginResponse: Codable, Hashable, Sendable {
    public let passwordSalt: String
    public let passwordParameters: Argon2Parameters
    public init(passwordSalt: String, passwordParameters: Argon2Parameters) {
        self.passwordSalt = passwordSalt
        self.passwordParameters = passwordParameters
    }
}

/// `POST /v1/accounts`.
public struct RegisterRequest: Codable, Hashable, Sendable {
    public let username: String
    /// The authentication key (from Argon2id; never the password): the server keeps a hash.
    public let authKey: String
    public let passwordSalt: String
    public let passwordParameters: Argon2Parameters
    /// The client's key record (wrapped master key, public keys), opaque to the server.
    public let keyRecord: String
    public init(username: String, authKey: String, passwordSalt: String, passwordParameters: Argon2Parameters, keyRecord: String) {
        self.username = username
        self.authKey = authKey
        self.passwordSalt = passwordSalt
        self.passwordParameters = passwordParameters
        self.keyRecord = keyRecord
    }
}

/// `POST /v1/sessions`.
public struct LoginRequest: Codable, Hashable, Sendable {
    public let username: String
    public let authKey: String
    public init(username: String, authKey: String) {
        self.username = username
        self.authKey = authKey
    }
}

public struct LoginResponse: Codable, Hashable, Sendable {
    public let token: String
    public let accountId: String
    public let keyRecord: String
    public let expiresAt: Int64
    public init(token: String, accountId: String, keyRecord: String, expiresAt: Int64) {
        self.token = token
        self.accountId = accountId
        self.keyRecord = keyRecord
        self.expiresAt = expiresAt
    }
}

/// `GET /v1/whoami`.
public struct WhoAmIResponse: Codable, Hashable, Sendable {
    public let accountId: String
    public let username: String
    public let quotaBytes: Int64
    public let usedBytes: Int64
    /// Set while an operator suspends the account (Docs/policy.md).
    public let suspension: AccountSuspension?
    /// Countries none of the account's new files goes to (absent: none).
    public let excludedCountries: [String]?
    /// Bytes its files served in the transfer window, and its transfer quota.
    public let transfer: TransferUse?
    public init(
        accountId: String, username: String, quotaBytes: Int64, usedBytes: Int64, suspension: AccountSuspension? = nil, excludedCountries: [String]? = nil,
        transfer: TransferUse? = nil
    ) {
        self.transfer = transfer
        self.accountId = accountId
        self.username = username
        self.quotaBytes = quotaBytes
        self.usedBytes = usedBytes
        self.suspension = suspension
        self.excludedCountries = excludedCountries
    }
}

/// What an account's files served (to it, to those it shares with, through its links) in the
/// rolling transfer window, against its transfer quota (Docs/policy.md, "Transfer quotas").
public struct TransferUse: Codable, Hashable, Sendable {
    public let quotaBytes: Int64
    /// As this coordinator knows it: what other coordinators served may show up to about two
    /// `transfer_flush_seconds` late.
    public let usedBytes: Int64
    public let windowSeconds: Int64
    /// When the oldest bytes counted leave the window (milliseconds since 1970); absent when
    /// nothing counts.
    public let resetsAt: Int64?
    public init(quotaBytes: Int64, usedBytes: Int64, windowSeconds: Int64, resetsAt: Int64?) {
        self.quotaBytes = quotaBytes
        self.usedBytes = usedBytes
        self.windowSeconds = windowSeconds
        self.resetsAt = resetsAt
    }
}

/// A file or folder as the server keeps it: the shape of the tree and opaque blobs.
public struct TreeNodeInfo: Codable, Hashable, Sendable {
    public let id: String
    public let parent: String
    /// "file" or "folder".
    public let type: String
    /// Encrypted attributes (name, size, mtime).
    public let attributes: String
    /// The node key wrapped under the parent's key.
    public let wrappedKey: String
    /// Files: the file key wrapped under the node key.
    public let fileKey: String?
    /// Files: ciphertext bytes.
    public let length: Int64?
    public let objectId: String?
    public let createdAt: Int64
    /// The node's name tag in its folder (see `CreateFolderRequest.nameTag`).
    public let nameTag: String?
    /// Folders whose key is being changed (after a share ended): the previous key wrapped
    /// under the new one, for the children not re-wrapped yet (Docs/keys.md, "Key rotation").
    public var previousKey: String?
    /// Folders: how many times the folder's key changed (absent: never). Writes that wrap a
    /// key or tag a name under the folder's key say which generation they used, and are
    /// refused (`key_changed`) when it is no longer the folder's.
    public var keyGeneration: Int64?
    /// The generation of the parent's key this node's wrapped key and name tag are under
    /// (absent: 0). A folder's key change is finished only once every child is under the new.
    public var parentKeyGeneration: Int64?
    /// Folders whose parent's key changed because a share ended: this folder's key must change
    /// too (the former recipient had it); until it does, it takes no new names.
    public var keyPending: Bool?
    /// In its owner's rubbish bin since (milliseconds since 1970): hidden from listings, links
    /// and shares, its name free in its folder, until restored or purged (Docs/policy.md).
    public var trashedAt: Int64?
    public init(
        id: String, parent: String, type: String, attributes: String, wrappedKey: String, fileKey: String?, length: Int64?, objectId: String?,
        createdAt: Int64, nameTag: String? = nil, previousKey: String? = nil, keyGeneration: Int64? = nil, parentKeyGeneration: Int64? = nil,
        keyPending: Bool? = nil
    ) {
        self.nameTag = nameTag
        self.previousKey = previousKey
        self.keyGeneration = keyGeneration
        self.parentKeyGeneration = parentKeyGeneration
        self.keyPending = keyPending
        self.id = id
        self.parent = parent
        self.type = type
        self.attributes = attributes
        self.wrappedKey = wrappedKey
        self.fileKey = fileKey
        self.length = length
        self.objectId = objectId
        self.createdAt = createdAt
    }
}

/// A node in its owner's rubbish bin (`GET /v1/bin`, `POST /v1/nodes/{id}/trash`).
public struct BinEntry: Codable, Hashable, Sendable {
    public let node: TreeNodeInfo
    /// The folders from the root's child down to the node's parent, for the client to unwrap
    /// the node's key and show where it was (empty for a node at the root).
    public let ancestors: [TreeNodeInfo]
    /// When the leader purges it, unless restored first (milliseconds since 1970).
    public let purgeAt: Int64
    public init(node: TreeNodeInfo, ancestors: [TreeNodeInfo], purgeAt: Int64) {
        self.node = node
        self.ancestors = ancestors
        self.purgeAt = purgeAt
    }
}

/// `GET /v1/bin?after=NODE`: a page of the rubbish bin, by node id; `next` names the last
/// entry when more may follow.
public struct BinList: Codable, Hashable, Sendable {
    public let entries: [BinEntry]
    public let next: String?
    public init(entries: [BinEntry], next: String?) {
        self.entries = entries
        self.next = next
    }
}

/// What a purge removed: `DELETE /v1/bin` (the whole bin), `DELETE /v1/nodes/{id}?recursive=true`.
public struct PurgeResult: Codable, Hashable, Sendable {
    /// Files and folders removed.
    public let nodes: Int
    /// Ciphertext bytes of the files removed (what the storage quota gets back).
    public let bytes: Int64
    /// True when a budget ran out before everything was removed (the leader's purge goes on
    /// at its next pass).
    public let remaining: Bool?
    public init(nodes: Int, bytes: Int64, remaining: Bool? = nil) {
        self.nodes = nodes
        self.bytes = bytes
        self.remaining = remaining
    }
}

/// `POST /v1/nodes`: a folder.
public struct CreateFolderRequest: Codable, Hashable, Sendable {
    public let id: String
    public let parent: String
    public let attributes: String
    public let wrappedKey: String
    /// A keyed hash of the name (16 bytes, base64url), computed by the client under a key of
    /// the folder's: the server keeps names unique per folder by it, and finds a child by
    /// name with one read, without ever seeing the name.
    public let nameTag: String
    /// The parent's key generation the wrapped key and name tag are under (absent: 0).
    public let parentKeyGeneration: Int64?
    public init(id: String, parent: String, attributes: String, wrappedKey: String, nameTag: String, parentKeyGeneration: Int64? = nil) {
        self.nameTag = nameTag
        self.parentKeyGeneration = parentKeyGeneration
        self.id = id
        self.parent = parent
        self.attributes = attributes
        self.wrappedKey = wrappedKey
    }
}

/// `PATCH /v1/nodes/{id}`: move and/or rename.
public struct UpdateNodeRequest: Codable, Hashable, Sendable {
    public let parent: String?
    public let attributes: String?
    public let wrappedKey: String?
    /// The name tag in the (new) folder; required with a new parent or new attributes.
    public let nameTag: String?
    /// With a name tag or a wrapped key: the (new) parent's key generation they are under.
    public let parentKeyGeneration: Int64?
    public init(parent: String?, attributes: String?, wrappedKey: String?, nameTag: String?, parentKeyGeneration: Int64? = nil) {
        self.nameTag = nameTag
        self.parentKeyGeneration = parentKeyGeneration
        self.parent = parent
        self.attributes = attributes
        self.wrappedKey = wrappedKey
    }
}

public struct NodeList: Codable, Hashable, Sendable {
    public let nodes: [TreeNodeInfo]
    public init(nodes: [TreeNodeInfo]) { self.nodes = nodes }
}

/// `POST /v1/links`.
public struct CreateLinkRequest: Codable, Hashable, Sendable {
    public let linkId: String
    public let nodeId: String
    /// The client's link record (node key wrapped under the link key), opaque to the server.
    public let record: String
    public let expiresAt: Int64?
    public init(linkId: String, nodeId: String, record: String, expiresAt: Int64?) {
        self.linkId = linkId
        self.nodeId = nodeId
        self.record = record
        self.expiresAt = expiresAt
    }
}

public struct LinkInfo: Codable, Hashable, Sendable {
    public let linkId: String
    public let nodeId: String
    public let record: String
    public let expiresAt: Int64?
    public let createdAt: Int64
    public init(linkId: String, nodeId: String, record: String, expiresAt: Int64?, createdAt: Int64) {
        self.linkId = linkId
        self.nodeId = nodeId
        self.record = record
        self.expiresAt = expiresAt
        self.createdAt = createdAt
    }
}

public struct LinkList: Codable, Hashable, Sendable {
    public let links: [LinkInfo]
    public init(links: [LinkInfo]) { self.links = links }
}

/// `GET /v1/l/{linkId}`: what anyone with the link may fetch (no account).
public struct PublicLink: Codable, Hashable, Sendable {
    public let link: LinkInfo
    public let node: TreeNodeInfo
    public init(link: LinkInfo, node: TreeNodeInfo) {
        self.link = link
        self.node = node
    }
}

/// `GET /v1/admin/status`.
public struct ClusterStatus: Codable, Hashable, Sendable {
    public struct Node: Codable, Hashable, Sendable {
        public let id: String
        public let country: String
        public let region: String
        public let url: String
        public let up: Bool
        public let capacityBytes: Int64
        public let usedBytes: Int64
        public init(id: String, country: String, region: String, url: String, up: Bool, capacityBytes: Int64, usedBytes: Int64) {
            self.id = id
            self.country = country
            self.region = region
            self.url = url
            self.up = up
            self.capacityBytes = capacityBytes
            self.usedBytes = usedBytes
        }
    }

    public let coordinator: String
    public let country: String
    public let metadata: String
    public let policy: String
    public let nodes: [Node]
    /// Alarms of the metadata store (etcd's NOSPACE: writes are refused until an operator
    /// acts, Docs/operations.md); absent when none.
    public let metadataAlarms: [String]?
    /// The coordinator that leads the background work, when known.
    public let leader: String?
    public init(coordinator: String, country: String, metadata: String, policy: String, nodes: [Node], metadataAlarms: [String]? = nil, leader: String? = nil) {
        self.coordinator = coordinator
        self.country = country
        self.metadata = metadata
        self.policy = policy
        self.nodes = nodes
        self.metadataAlarms = metadataAlarms
        self.leader = leader
    }
}

/// Custom headers of the content upload (`PUT /v1/nodes/{id}/content`).
public enum ContentHeaders {
    public static let parent = "x-coffre-parent"
    public static let attributes = "x-coffre-attributes"
    public static let wrappedKey = "x-coffre-wrapped-key"
    public static let fileKey = "x-coffre-file-key"
    /// The new file's name tag in its folder (see `CreateFolderRequest.nameTag`).
    public static let nameTag = "x-coffre-name-tag"
    /// The parent's key generation the wrapped key and name tag are under (absent: 0).
    public static let parentKeyGeneration = "x-coffre-parent-key-generation"
}

/// `GET /v1/health` of a coordinator (no authentication): for load balancers and probes.
/// `status` is `ok` while it sees at least one storage node up, else `degraded`.
public struct CoordinatorHealth: Codable, Hashable, Sendable {
    public var coordinator: String
    public var country: String
    public var status: String
    public var nodesUp: Int
    public var nodes: Int
    /// Its connection and request counters (client API and cluster listener together).
    public var connections: ConnectionStats?

    public init(coordinator: String, country: String, status: String, nodesUp: Int, nodes: Int, connections: ConnectionStats? = nil) {
        self.connections = connections
        self.coordinator = coordinator
        self.country = country
        self.status = status
        self.nodesUp = nodesUp
        self.nodes = nodes
    }
}

// MARK: - Sharing with other users (Docs/keys.md, "User shares")

/// An account's public keys, base64url of 32 bytes each: Ed25519 (signing) and X25519
/// (HPKE agreement). Published by the account's own client; the server only relays them, and
/// clients pin them on first use (a server that swaps them is noticed).
public struct PublicKeys: Codable, Hashable, Sendable {
    public let signingKey: String
    public let agreementKey: String
    public init(signingKey: String, agreementKey: String) {
        self.signingKey = signingKey
        self.agreementKey = agreementKey
    }
}

/// `GET /v1/users/{username}/keys`.
public struct UserKeys: Codable, Hashable, Sendable {
    public let username: String
    public let keys: PublicKeys
    public init(username: String, keys: PublicKeys) {
        self.username = username
        self.keys = keys
    }
}

/// A folder's node key sealed (HPKE) to the recipient and signed by the sender, base64url.
public struct SealedShareText: Codable, Hashable, Sendable {
    public let encapsulatedKey: String
    public let ciphertext: String
    public let signature: String
    public init(encapsulatedKey: String, ciphertext: String, signature: String) {
        self.encapsulatedKey = encapsulatedKey
        self.ciphertext = ciphertext
        self.signature = signature
    }
}

/// `POST /v1/shares`: share one of the caller's folders with another account.
public struct CreateShareRequest: Codable, Hashable, Sendable {
    public let nodeId: String
    /// The recipient's username.
    public let recipient: String
    /// The recipient may add, rename and delete inside the folder.
    public let write: Bool
    public let sealed: SealedShareText
    public init(nodeId: String, recipient: String, write: Bool, sealed: SealedShareText) {
        self.nodeId = nodeId
        self.recipient = recipient
        self.write = write
        self.sealed = sealed
    }
}

/// A share as its owner or its recipient sees it.
public struct ShareInfo: Codable, Hashable, Sendable {
    public let ownerId: String
    public let owner: String
    public let nodeId: String
    public let recipientId: String
    public let recipient: String
    public let write: Bool
    public let sealed: SealedShareText
    public let createdAt: Int64
    /// Incoming shares: the shared folder's record (its attributes open with the node key).
    public var node: TreeNodeInfo?
    public init(
        ownerId: String, owner: String, nodeId: String, recipientId: String, recipient: String, write: Bool, sealed: SealedShareText,
        createdAt: Int64, node: TreeNodeInfo? = nil
    ) {
        self.ownerId = ownerId
        self.owner = owner
        self.nodeId = nodeId
        self.recipientId = recipientId
        self.recipient = recipient
        self.write = write
        self.sealed = sealed
        self.createdAt = createdAt
        self.node = node
    }
}

/// `GET /v1/shares`.
public struct ShareList: Codable, Hashable, Sendable {
    public let outgoing: [ShareInfo]
    public let incoming: [ShareInfo]
    public init(outgoing: [ShareInfo], incoming: [ShareInfo]) {
        self.outgoing = outgoing
        self.incoming = incoming
    }
}

// MARK: - Key rotation of a folder (Docs/keys.md, "Key rotation")

/// `POST /v1/nodes/{id}/rekey`: a folder takes a new key. Its record gets attributes and a
/// wrapped key under the new key, and the previous key wrapped under the new one (for the
/// children not yet re-wrapped); every share of the folder gets the new key sealed.
public struct RekeyFolderRequest: Codable, Hashable, Sendable {
    public struct Share: Codable, Hashable, Sendable {
        public let recipient: String
        public let sealed: SealedShareText
        public init(recipient: String, sealed: SealedShareText) {
            self.recipient = recipient
            self.sealed = sealed
        }
    }

    public let attributes: String
    public let wrappedKey: String
    public let previousKey: String
    public let shares: [Share]
    /// The parent's key generation the new wrapped key is under (absent: 0).
    public let parentKeyGeneration: Int64?
    /// The parent the new wrapped key is bound to (the folder may have moved meanwhile).
    public let parent: String
    public init(attributes: String, wrappedKey: String, previousKey: String, shares: [Share], parent: String, parentKeyGeneration: Int64? = nil) {
        self.parent = parent
        self.parentKeyGeneration = parentKeyGeneration
        self.attributes = attributes
        self.wrappedKey = wrappedKey
        self.previousKey = previousKey
        self.shares = shares
    }
}

/// `POST /v1/nodes/{id}/rekey/children`: children of a folder re-wrapped under its new key,
/// with their name tags under it (at most `Limits.rekeyChildrenPerRequestMax` at a time).
public struct RekeyChildrenRequest: Codable, Hashable, Sendable {
    public struct Child: Codable, Hashable, Sendable {
        public let id: String
        public let wrappedKey: String
        public let nameTag: String?
        /// The child's wrapped key as the client read it: the change is refused
        /// (`key_changed`) when the child was moved or re-wrapped meanwhile.
        public let wrappedKeyWas: String
        public init(id: String, wrappedKey: String, nameTag: String?, wrappedKeyWas: String) {
            self.wrappedKeyWas = wrappedKeyWas
            self.id = id
            self.wrappedKey = wrappedKey
            self.nameTag = nameTag
        }
    }

    public let children: [Child]
    /// The folder's key generation the children are re-wrapped under.
    public let keyGeneration: Int64
    public init(children: [Child], keyGeneration: Int64) {
        self.children = children
        self.keyGeneration = keyGeneration
    }
}

/// `GET /v1/rekeys[?after=ID]`: the caller's folders whose key change is unfinished (started,
/// or due because a share above them ended), for the client to finish; in id order.
public struct PendingKeyChanges: Codable, Hashable, Sendable {
    public let nodes: [String]
    /// More after the last of these: ask again with `after` = the last id.
    public let more: Bool
    public init(nodes: [String], more: Bool) {
        self.nodes = nodes
        self.more = more
    }
}
