public import CoffreModel
import Foundation

/// Where a cluster is and how to trust it: coordinators by country and the cluster CA.
///
/// Written by `Cluster/up` (and by hand for other clusters) to
/// `$COFFRE_HOME/profiles/<name>.json`; `COFFRE_HOME` defaults to `~/.coffre`.
public struct Profile: Codable, Sendable, Equatable {
    public struct Coordinator: Codable, Sendable, Equatable {
        public var country: String
        public var url: String
        public init(country: String, url: String) {
            self.country = country
            self.url = url
        }
    }

    public var name: String
    public var coordinators: [Coordinator]
    /// Path of the cluster CA certificate (PEM): the only authority trusted.
    public var ca: String
    /// For `coffre admin`: the coordinators' admin token.
    public var adminToken: String?

    public init(name: String, coordinators: [Coordinator], ca: String, adminToken: String? = nil) {
        self.name = name
        self.coordinators = coordinators
        self.ca = ca
        self.adminToken = adminToken
    }

    public static var home: String {
        ProcessInfo.processInfo.environment["COFFRE_HOME"] ?? (NSHomeDirectory() + "/.coffre")
    }

    /// Loads a profile by name (from `$COFFRE_HOME/profiles`) or by path.
    public static func load(_ nameOrPath: String) throws(ClientError) -> Profile {
        let path = nameOrPath.contains("/") ? nameOrPath : home + "/profiles/\(nameOrPath).json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ClientError(.notFound, "no profile \(nameOrPath) (looked for \(path)); Cluster/up writes one")
        }
        do {
            return try JSONDecoder().decode(Profile.self, from: data)
        } catch {
            throw ClientError(.invalidArgument, "profile \(path) is not valid: \(error)")
        }
    }

    public func save() throws {
        let folder = Self.home + "/profiles"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: folder + "/\(name).json"))
    }
}

/// A logged-in session: kept by the CLI in `$COFFRE_HOME/sessions/<profile>.json` (mode 0600),
/// master key included, so that later commands can decrypt without the password.
public struct Session: Codable, Sendable {
    public var username: String
    public var accountId: String
    public var token: String
    public var expiresAt: Int64
    /// base64url of the master key. Never sent anywhere.
    public var masterKey: String

    public static func path(profile: String) -> String { Profile.home + "/sessions/\(profile).json" }

    public static func load(profile: String) throws(ClientError) -> Session {
        guard let data = FileManager.default.contents(atPath: path(profile: profile)),
            let session = try? JSONDecoder().decode(Session.self, from: data)
        else { throw ClientError(.unauthenticated, "not logged in to \(profile): run coffre login") }
        return session
    }

    public func save(profile: String) throws {
        let folder = Profile.home + "/sessions"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let file = Self.path(profile: profile)
        _ = FileManager.default.createFile(atPath: file, contents: try JSONEncoder().encode(self), attributes: [.posixPermissions: 0o600])
    }
}

/// An error of the client; `code` is the server's when it answered.
public struct ClientError: CodedError {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
