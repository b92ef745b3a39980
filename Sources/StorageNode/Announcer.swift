import AsyncHTTPClient
import ClusterTLS
import CoffreModel
import CoffreAPI
import DaemonConfiguration
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Announces this node to the coordinators' cluster listeners (mutual TLS, this node's own
/// certificate, which names it): at start until one accepts, then every
/// `Limits.nodeAnnounceIntervalSeconds`, so that a coordinator that lost the record, or a
/// node that moved, is set right. Liveness is not this: coordinators poll nodes' health.
final class Announcer: Service, Sendable {
    let configuration: StorageNodeConfiguration
    let logger: Logger
    let client: HTTPClient
    private let port = Mutex<Int?>(nil)

    init(configuration: StorageNodeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        var settings = HTTPClient.Configuration(tlsConfiguration: try? TLSSetup.client(
            ca: configuration.tls.clusterCA, certificate: configuration.tls.certificate, key: configuration.tls.key))
        settings.httpVersion = .http1Only
        settings.timeout.connect = .seconds(2)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: settings)
    }

    func listening(port: Int) { self.port.withLock { $0 = port } }

    func run() async throws {
        var pause = Duration.milliseconds(200)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if let port = port.withLock({ $0 }) {
                if await announce(port: port) {
                    pause = .seconds(Limits.nodeAnnounceIntervalSeconds)
                } else {
                    pause = min(pause * 2, .seconds(5))
                }
            }
            try? await Task.sleep(for: pause)
        }
    }

    /// To the first coordinator that accepts; false when none did.
    private func announce(port: Int) async -> Bool {
        let url = configuration.advertiseURL ?? "https://\(configuration.host):\(port)"
        let body = NodeAnnouncement(node: configuration.node, country: configuration.country.uppercased(), region: configuration.region, url: url)
        guard let data = try? JSONEncoder().encode(body) else { return false }
        for coordinator in configuration.announce {
            var request = HTTPClientRequest(url: coordinator + "/v1/cluster/announce")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
            do {
                let response = try await client.execute(request, timeout: .seconds(5))
                let answer = try await response.body.collect(upTo: 64 << 10)
                if (200..<300).contains(response.status.code) { return true }
                logger.warning("announcement refused", metadata: [
                    "coordinator.url": "\(coordinator)", "status": "\(response.status.code)",
                    "answer": "\(String(decoding: answer.readableBytesView, as: UTF8.self))",
                ])
            } catch {
                logger.debug("announcement failed", metadata: ["coordinator.url": "\(coordinator)", "error": "\(error)"])
            }
        }
        return false
    }
}
