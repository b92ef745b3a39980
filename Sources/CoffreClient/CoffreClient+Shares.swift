public import CoffreAPI
public import CoffreModel
public import Encryption
import Foundation

/// Another user's public keys as this client pinned them on first use.
public struct Contact: Codable, Sendable, Hashable {
    public let username: String
    public let keys: PublicKeys
    public let fingerprint: String
    /// Milliseconds since 1970.
    public let pinnedAt: Int64
    /// The user compared the fingerprint with the contact's own (`coffre contacts verify`).
    public var verified: Bool
}

/// The pinned keys of other users, per profile: `$COFFRE_HOME/contacts/PROFILE.json`.
///
/// Why pins: the server relays public keys and could hand out its own. Pinned on first use
/// and shown as a fingerprint, a key it swaps later is refused loudly (`signature_invalid`)
/// until the user compares fingerprints and accepts the new key.
public struct ContactBook: Codable, Sendable {
    public var contacts: [String: Contact] = [:]

    public static func path(profile: String) -> String { Profile.home + "/contacts/\(profile).json" }

    public static func load(file: String) throws -> ContactBook {
        guard let data = FileManager.default.contents(atPath: file) else { return ContactBook() }
        do {
            return try JSONDecoder().decode(ContactBook.self, from: data)
        } catch {
            throw ClientError(.invalidArgument, "contacts file \(file) is damaged: \(error)")
        }
    }

    public func save(file: String) throws {
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        _ = FileManager.default.createFile(atPath: file, contents: try encoder.encode(self), attributes: [.posixPermissions: 0o600])
    }
}

/// A share as the CLI shows it; `name` is the shared folder's decrypted name.
public struct ShareEntry: Codable, Sendable, Hashable {
    public let owner: String
    public let recipient: String
    public let nodeId: String
    public let name: String?
    public let write: Bool
    public let createdAt: Int64
}

extension PublicKeys {
    init(_ identity: PublicIdentity) {
        self.init(signingKey: Base64URL.encode(identity.signingKey), agreementKey: Base64URL.encode(identity.agreementKey))
    }

    func identity() throws -> PublicIdentity {
        guard let signing = Base64URL.decode(signingKey), let agreement = Base64URL.decode(agreementKey) else {
            throw ClientError(.invalidArgument, "malformed public keys")
        }
        return try PublicIdentity(signingKey: signing, agreementKey: agreement)
    }
}

extension SealedShareText {
    init(_ sealed: SealedShare) {
        self.init(
            encapsulatedKey: Base64URL.encode(sealed.encapsulatedKey), ciphertext: Base64URL.encode(sealed.ciphertext),
            signature: Base64URL.encode(sealed.signature))
    }

    /// The sealed share these fields carry; `signature_invalid` when they do not decode.
    func sealedShare() throws -> SealedShare {
        guard let enc = Base64URL.decode(encapsulatedKey), let box = Base64URL.decode(ciphertext), let signature = Base64URL.decode(signature) else {
            throw ClientError(.signatureInvalid, "a sealed share is malformed")
        }
        return try SealedShare(encapsulatedKey: enc, ciphertext: box, signature: signature)
    }
}

extension CoffreClient {
    func identity(_ session: Session) throws -> Identity { Identity(masterKey: try masterKey(session)) }

    /// This account's key fingerprint, for others to compare with what they pinned.
    public func fingerprint(_ session: Session) throws -> String { try identity(session).publicIdentity.fingerprint }

    /// Publishes this account's public keys (once; the server refuses other keys later).
    public func publishKeys(_ session: Session) async throws {
        _ = try await send(.PUT, "/v1/account/keys", token: session.token, json: PublicKeys(try identity(session).publicIdentity))
    }

    /// `username`'s keys: as pinned, or fetched and pinned now (first use). Keys the server
    /// now gives that differ from the pinned ones are refused until verified.
    func pinnedKeys(_ username: String, _ session: Session) async throws -> PublicIdentity {
        let name = username.lowercased()
        var book = try ContactBook.load(file: contactsFile)
        let served = try decode(UserKeys.self, try await send(.GET, "/v1/users/\(name)/keys", token: session.token)).keys
        if let pinned = book.contacts[name] {
            guard pinned.keys == served else {
                throw ClientError(
                    .signatureInvalid,
                    "the server now gives other keys for \(name) (fingerprint \(try served.identity().fingerprint), pinned \(pinned.fingerprint)): "
                        + "compare with \(name) and run coffre contacts verify \(name) --accept FINGERPRINT")
            }
            return try pinned.keys.identity()
        }
        let identity = try served.identity()
        book.contacts[name] = Contact(
            username: name, keys: served, fingerprint: identity.fingerprint, pinnedAt: Int64(Date().timeIntervalSince1970 * 1000), verified: false)
        try book.save(file: contactsFile)
        return identity
    }

    /// Shares a folder with `username`: its key sealed (HPKE) to their pinned key and signed.
    public func share(_ path: String, with username: String, write: Bool, _ session: Session) async throws -> ShareEntry {
        let folder = try await locate(path, session)
        guard let info = folder.info, info.type == "folder", folder.owner == nil else {
            throw ClientError(.invalidArgument, "\(path) is not one of your folders (the root cannot be shared)")
        }
        let recipient = username.lowercased()
        let keys = try await pinnedKeys(recipient, session)
        let sealed = try UserShare.seal(
            nodeKey: folder.key, nodeId: info.id, from: try identity(session), senderId: session.username.lowercased(), to: keys, recipientId: recipient)
        let request = CreateShareRequest(nodeId: info.id, recipient: recipient, write: write, sealed: SealedShareText(sealed))
        let made = try decode(ShareInfo.self, try await send(.POST, "/v1/shares", token: session.token, json: request))
        return ShareEntry(owner: made.owner, recipient: made.recipient, nodeId: made.nodeId, name: folder.attributes?.name, write: made.write, createdAt: made.createdAt)
    }

    /// Ends a share: the coordinator refuses the former recipient from now on, and the folder
    /// and every folder below it get new keys, so that what is added later is wrapped under
    /// keys the former recipient never had.
    /// - Returns: the number of folders that got a new key.
    @discardableResult
    public func unshare(_ path: String, with username: String, _ session: Session) async throws -> Int {
        let folder = try await locate(path, session)
        guard let info = folder.info, folder.owner == nil else { throw ClientError(.invalidArgument, "\(path) is not one of your folders") }
        do {
            _ = try await send(.DELETE, "/v1/shares/\(info.id)/\(username.lowercased())", token: session.token)
        } catch let error as ClientError where error.code == .notFound {
            throw ClientError(.notFound, "\(error.message) (if an earlier unshare was cut short, coffre rekey \(path) finishes giving it new keys)")
        }
        return try await rekey(path, session)
    }

    /// Gives a folder and every folder below it new keys (what `unshare` does), sealing the
    /// new keys for the shares that remain; then finishes every other change of this
    /// account's that was cut short (`finishKeyChanges`).
    /// - Returns: the number of folders that got a new key.
    @discardableResult
    public func rekey(_ path: String, _ session: Session) async throws -> Int {
        guard !path.hasPrefix("@"), !Self.components(path).isEmpty else { throw ClientError(.invalidArgument, "\(path) is not one of your folders") }
        let folder = try await locate(path, session)
        guard let info = folder.info, info.type == "folder" else { throw ClientError(.invalidArgument, "\(path) is not a folder") }
        let shares = try decode(ShareList.self, try await send(.GET, "/v1/shares", token: session.token)).outgoing
        return try await changeKey(of: info.id, shares: shares, session) + (try await finishKeyChanges(session))
    }

    /// Finishes every key change of this account's folders that is under way or due: one cut
    /// short, and the sub-folders of a folder whose key changed (each one's key changes in
    /// turn, which makes its own sub-folders due, down to the leaves). The coordinator keeps
    /// the list (`GET /v1/rekeys`), so a change cut short anywhere is finished by the next call.
    /// - Returns: the number of folders that got a new key.
    @discardableResult
    public func finishKeyChanges(_ session: Session) async throws -> Int {
        var done = 0
        while true {
            let listed = try await pendingKeyChanges(session)
            guard !listed.isEmpty else { return done }
            let shares = try decode(ShareList.self, try await send(.GET, "/v1/shares", token: session.token)).outgoing
            let all = Set(listed)
            var handled = 0
            for id in listed {
                // Parents first: a folder whose parent's key is still to change would have to
                // change again after it (its new key would be wrapped under one that is known).
                guard let info = try? decode(TreeNodeInfo.self, try await send(.GET, "/v1/nodes/" + id, token: session.token)),
                    !all.contains(info.parent)
                else { continue }
                done += try await changeKey(of: id, shares: shares, session)
                handled += 1
            }
            // Every list has a folder whose parent is not on it, and each one handled finished
            // a change or threw: a pass that handled none would loop for ever.
            guard handled > 0 else { throw ClientError(.storageFailure, "\(listed.count) key changes are listed and none could be handled") }
        }
    }

    /// Every folder on this account's list of unfinished key changes, all pages.
    func pendingKeyChanges(_ session: Session) async throws -> [String] {
        var nodes: [String] = []
        var after: String? = nil
        while true {
            let page = try decode(PendingKeyChanges.self, try await send(.GET, "/v1/rekeys" + (after.map { "?after=" + $0 } ?? ""), token: session.token))
            nodes += page.nodes
            guard page.more, let last = page.nodes.last, last > (after ?? ""), nodes.count < Limits.keyChangesListedMax else { return nodes }
            after = last
        }
    }

    /// One folder's change of key, read afresh (and read again when a step finds that a key
    /// changed meanwhile). Each step leaves a tree every reader can open: the folder's record
    /// first (new key, previous key wrapped under it, shares sealed anew), then its children
    /// re-wrapped ten at a time (its sub-folders become due), then the previous key dropped.
    /// A folder with no change under way gets one (it is listed, or `rekey PATH` asked).
    /// - Parameters:
    ///   - stopBefore: stop there, as a client that crashed would (tests).
    /// - Returns: 1 when a change finished, 0 when the folder is gone (or `stopBefore`).
    func changeKey(of id: String, shares: [ShareInfo], stopBefore: KeyChangeStep? = nil, _ session: Session) async throws -> Int {
        var started = false
        for attempt in 1...Limits.keyChangeAttemptsMax {
            do {
                let (folder, parent) = try await locateOwn(id, session)
                guard let info = folder.info, info.type == "folder", let attributes = folder.attributes else { return 0 }
                var current = folder
                if folder.previousKey == nil {
                    // Ours, finished meanwhile by another of this account's clients.
                    if started { return 1 }
                    let newKey = SecretKey.random()
                    var sealed: [RekeyFolderRequest.Share] = []
                    for share in shares where share.nodeId == id {
                        let box = try UserShare.seal(
                            nodeKey: newKey, nodeId: id, from: try identity(session), senderId: session.username.lowercased(),
                            to: try await pinnedKeys(share.recipient, session), recipientId: share.recipient)
                        sealed.append(.init(recipient: share.recipient, sealed: SealedShareText(box)))
                    }
                    let request = RekeyFolderRequest(
                        attributes: Base64URL.encode(try AttributeBox.seal(attributes, nodeKey: newKey, nodeId: id)),
                        wrappedKey: Base64URL.encode(NodeKeys.wrap(newKey, childId: id, parentId: parent.id, under: parent.key).bytes),
                        previousKey: Base64URL.encode(NodeKeys.wrapPreviousKey(folder.key, nodeId: id, under: newKey).bytes), shares: sealed,
                        parent: parent.id, parentKeyGeneration: parent.info?.keyGeneration)
                    let updated = try decode(TreeNodeInfo.self, try await send(.POST, "/v1/nodes/\(id)/rekey", token: session.token, json: request))
                    started = true
                    current = Located(id: id, key: newKey, info: updated, attributes: attributes, previousKey: folder.key)
                }
                if stopBefore == .children { return 0 }
                let generation = current.info?.keyGeneration ?? 0
                var changes: [RekeyChildrenRequest.Child] = []
                // What is in the rubbish bin takes the new key too.
                let (readable, unreadable) = try await readableChildren(of: current, includingTrashed: true, session)
                for child in readable {
                    guard let childInfo = child.info, let name = child.attributes?.name else { continue }
                    let tag = NodeKeys.nameTag(name, folderKey: current.key)
                    if (childInfo.parentKeyGeneration ?? 0) == generation && childInfo.nameTag == tag { continue }
                    changes.append(.init(
                        id: child.id, wrappedKey: Base64URL.encode(NodeKeys.wrap(child.key, childId: child.id, parentId: id, under: current.key).bytes),
                        nameTag: tag, wrappedKeyWas: childInfo.wrappedKey))
                }
                for start in stride(from: 0, to: changes.count, by: Limits.rekeyChildrenPerRequestMax) {
                    let chunk = Array(changes[start..<min(changes.count, start + Limits.rekeyChildrenPerRequestMax)])
                    _ = try await send(
                        .POST, "/v1/nodes/\(id)/rekey/children", token: session.token, json: RekeyChildrenRequest(children: chunk, keyGeneration: generation))
                }
                // A child that does not open cannot be re-wrapped, and the coordinator does not
                // finish a change with a child under the previous key: it must go first.
                guard unreadable.isEmpty else {
                    let error = Self.unreadableError(unreadable, in: id)
                    throw ClientError(.decryptionFailed, error.message + "; then coffre rekey finishes the key change")
                }
                if stopBefore == .finish { return 0 }
                _ = try await send(.DELETE, "/v1/nodes/\(id)/rekey", token: session.token)
                return 1
            } catch let error as ClientError where error.code == .notFound {
                return started ? 1 : 0
            } catch let error as ClientError where [.keyChanged, .keyChanging, .conflict].contains(error.code) && attempt < Limits.keyChangeAttemptsMax {
                // A key or a child changed under this step (a move, an upload, another of this
                // account's clients on the same change): read again.
                continue
            }
        }
        return 0
    }
    /// What this account shared and what was shared with it; incoming shares are opened (the
    /// sender's signature checked against its pinned key) to show their folder's name.
    public func shares(_ session: Session) async throws -> (outgoing: [ShareEntry], incoming: [ShareEntry]) {
        let list = try decode(ShareList.self, try await send(.GET, "/v1/shares", token: session.token))
        var names: [String: String] = [:]
        for share in list.outgoing where names[share.nodeId] == nil {
            names[share.nodeId] = try? await locateById(share.nodeId, session)
        }
        let outgoing = list.outgoing.map {
            ShareEntry(owner: $0.owner, recipient: $0.recipient, nodeId: $0.nodeId, name: names[$0.nodeId], write: $0.write, createdAt: $0.createdAt)
        }
        var incoming: [ShareEntry] = []
        for share in list.incoming {
            let folder = try await open(share, session)
            incoming.append(ShareEntry(
                owner: share.owner, recipient: share.recipient, nodeId: share.nodeId, name: folder.attributes?.name, write: share.write,
                createdAt: share.createdAt))
        }
        return (outgoing.sorted { ($0.name ?? "", $0.recipient) < ($1.name ?? "", $1.recipient) }, incoming.sorted { ($0.owner, $0.name ?? "") < ($1.owner, $1.name ?? "") })
    }

    /// An incoming share opened: the signature checked against the owner's pinned keys, the
    /// folder key unsealed, the folder's attributes decrypted.
    func open(_ share: ShareInfo, _ session: Session) async throws -> Located {
        guard let node = share.node, node.id == share.nodeId, node.type == "folder" else {
            throw ClientError(.storageFailure, "share of \(share.owner) has no folder record")
        }
        let sender = try await pinnedKeys(share.owner, session)
        let key = try UserShare.open(
            try share.sealed.sealedShare(), nodeId: share.nodeId,
            senderId: share.owner, sender: sender, as: try identity(session), recipientId: session.username.lowercased())
        guard let blob = Base64URL.decode(node.attributes) else { throw ClientError(.decryptionFailed, "malformed attributes of the shared folder") }
        let attributes = try AttributeBox.open(blob, nodeKey: key, nodeId: node.id)
        try attributes.validate()
        return Located(
            id: node.id, key: key, info: node, attributes: attributes, owner: share.ownerId, previousKey: try Self.previousKey(of: node, under: key))
    }

    /// The folder `owner` shared with this account under `name`.
    func sharedFolder(owner: String, name: String, _ session: Session) async throws -> Located {
        let list = try decode(ShareList.self, try await send(.GET, "/v1/shares", token: session.token))
        for share in list.incoming where share.owner == owner.lowercased() {
            let folder = try await open(share, session)
            if folder.attributes?.name == name { return folder }
        }
        throw ClientError(.notFound, "\(owner) shares no folder named \(name) with you")
    }

    /// The name of one of this account's nodes by id (for listing what it shared).
    func locateById(_ id: String, _ session: Session) async throws -> String? {
        try await locateOwn(id, session).node.attributes?.name
    }

    /// One of this account's nodes by id, opened from the root down, with its folder.
    func locateOwn(_ id: String, _ session: Session) async throws -> (node: Located, parent: Located) {
        var chain: [TreeNodeInfo] = []
        var current = id
        for _ in 0..<Limits.treeDepthMax where current != "root" {
            let info = try decode(TreeNodeInfo.self, try await send(.GET, "/v1/nodes/" + current, token: session.token))
            chain.append(info)
            current = info.parent
        }
        guard current == "root" else { throw ClientError(.storageFailure, "node \(id) is deeper than \(Limits.treeDepthMax) folders") }
        var parent = try root(session)
        var node = parent
        for info in chain.reversed() {
            parent = node
            node = try open(info, in: parent)
        }
        return (node, parent)
    }

    /// The contacts this profile pinned.
    public func contacts() throws -> [Contact] {
        try ContactBook.load(file: contactsFile).contacts.values.sorted { $0.username < $1.username }
    }

    /// Compares `username`'s pinned keys with what the server gives now. With `accept` (the
    /// new fingerprint, as the user got it from the contact), pins the new keys; without it,
    /// marks the pin verified when both agree.
    public func verifyContact(_ username: String, accept: String?, _ session: Session) async throws -> (pinned: Contact?, served: String) {
        let name = username.lowercased()
        var book = try ContactBook.load(file: contactsFile)
        let served = try decode(UserKeys.self, try await send(.GET, "/v1/users/\(name)/keys", token: session.token)).keys
        let fingerprint = try served.identity().fingerprint
        let before = book.contacts[name]
        if let accept {
            guard Contact.normalised(accept) == Contact.normalised(fingerprint) else {
                throw ClientError(.signatureInvalid, "the server gives \(name) keys with fingerprint \(fingerprint), not \(accept): nothing changed")
            }
            book.contacts[name] = Contact(username: name, keys: served, fingerprint: fingerprint, pinnedAt: Int64(Date().timeIntervalSince1970 * 1000), verified: true)
        } else if var pinned = before, pinned.keys == served {
            pinned.verified = true
            book.contacts[name] = pinned
        } else if before == nil {
            book.contacts[name] = Contact(username: name, keys: served, fingerprint: fingerprint, pinnedAt: Int64(Date().timeIntervalSince1970 * 1000), verified: false)
        }
        try book.save(file: contactsFile)
        return (before, fingerprint)
    }
}

/// The steps of one folder's key change after its start (`changeKey(stopBefore:)`).
enum KeyChangeStep { case children, finish }

extension Contact {
    static func normalised(_ fingerprint: String) -> String { fingerprint.lowercased().filter { $0.isHexDigit } }
}
