import ClusterTLS
import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import Metadata
import Placement
import Synchronization
import Telemetry

/// What the coordinator's telemetry listener shows: its metrics, read from the workers'
/// statuses at every scrape, and its readiness.
extension CoordinatorServer {
    func registerMetrics() {
        metrics.set(.buildInfo, "coordinator", configuration.id, CoffreVersion.current, to: 1)
        for (name, path) in [("coordinator", configuration.tls.certificate), ("cluster_ca", configuration.tls.clusterCA)] {
            if let expiry = try? CertificateSummary.expiry(ofPEMFile: path) { metrics.set(.certificateExpiry, name, to: expiry.timeIntervalSince1970) }
        }
        if let etcd = configuration.etcdTLS, let expiry = try? CertificateSummary.expiry(ofPEMFile: etcd.certificate) {
            metrics.set(.certificateExpiry, "etcd_client", to: expiry.timeIntervalSince1970)
        }
        let memory = ScrapeMemory()
        metrics.onScrape { [weak self] metrics in
            guard let self else { return }
            metrics.record(self.connections.stats)
            self.recordNodes(metrics, seen: memory.nodes)
            self.recordCountries(metrics, seen: memory.countries)
            self.recordBackgroundWork(metrics, healthyHighest: memory.healthyHighest)
        }
    }

    /// Every member as this coordinator sees it; the series of a node that left are removed.
    private func recordNodes(_ metrics: MetricsRegistry, seen: borrowing Mutex<[String: (country: String, region: String)]>) {
        let nodes = objects.topology.descriptors()
        for node in nodes {
            metrics.set(.nodeUp, node.id.value, node.country.code, node.region, to: node.isUp ? 1 : 0)
            metrics.set(.nodeCapacity, node.id.value, to: Double(node.capacityBytes))
            metrics.set(.nodeUsed, node.id.value, to: Double(node.usedBytes))
        }
        let gone = seen.withLock { seen in
            let current = Dictionary(nodes.map { ($0.id.value, (country: $0.country.code, region: $0.region)) }, uniquingKeysWith: { a, _ in a })
            defer { seen = current }
            return seen.filter { current[$0.key] == nil }
        }
        for (node, place) in gone {
            metrics.remove(.nodeUp, node, place.country, place.region)
            metrics.remove(.nodeCapacity, node)
            metrics.remove(.nodeUsed, node)
        }
        let policy = objects.policy
        metrics.set(.policyShards, "data", to: Double(policy.erasure.dataShards))
        metrics.set(.policyShards, "parity", to: Double(policy.erasure.parityShards))
        metrics.set(.policyShards, "margin", to: Double(policy.margin))
    }

    /// The countries' states as the leader published them: the same on every coordinator.
    private func recordCountries(_ metrics: MetricsRegistry, seen: borrowing Mutex<Set<String>>) {
        let reports = health.countries()?.countries ?? []
        let known = seen.withLock { seen in
            seen.formUnion(reports.map(\.country))
            return seen
        }
        for country in known {
            let report = reports.first { $0.country == country }
            for state in CountryState.allCases {
                metrics.set(.countryState, country, state.rawValue, to: report?.state == state.rawValue ? 1 : 0)
            }
            metrics.set(.countryNodesUp, country, to: Double(report?.nodesUp ?? 0))
            metrics.set(.countryNodes, country, to: Double(report.map { $0.nodesUp + $0.nodesDown } ?? 0))
        }
    }

    /// The leader's workers; zeros on a coordinator that does not lead, so that a sum or max
    /// over coordinators is the leader's figure.
    private func recordBackgroundWork(_ metrics: MetricsRegistry, healthyHighest: borrowing Mutex<Int>) {
        let term = election.current
        metrics.set(.leader, to: term == nil ? 0 : 1)
        metrics.set(.leaderEpoch, to: Double(term?.epoch ?? 0))
        let leading = term != nil
        let repair = repair.status()
        let (byHealthy, atRisk) = leading ? self.repair.degradedSegments(margin: objects.policy.margin) : ([:], 0)
        let highest = healthyHighest.withLock { highest in
            highest = max(highest, objects.policy.erasure.totalShards, byHealthy.keys.max() ?? 0)
            return highest
        }
        for healthy in 0...highest {
            // Every count shown once stays shown, so that a series falls back to 0 once repaired.
            metrics.set(.segmentsDegraded, String(healthy), to: Double(byHealthy[healthy] ?? 0))
        }
        metrics.set(.segmentsAtRisk, to: Double(atRisk))
        metrics.set(.segmentsUnrepairable, to: leading ? Double(repair.segmentsUnrepairable) : 0)
        metrics.set(.repairQueue, to: leading ? Double(repair.queuedSegments) : 0)
        metrics.set(.repairRemaining, to: leading ? Double(repair.bytesLeft) : 0)
        metrics.set(.repairRate, to: leading ? repair.rateBytesPerSecond : 0)
        metrics.set(.repairETA, to: leading ? repair.etaSeconds ?? 0 : 0)
        metrics.set(.repairBudget, to: leading ? Double(repair.budgetBytesPerSecond) : 0)
        let rebalance = rebalance.status()
        metrics.set(.drainingNodes, to: leading ? Double(rebalance.draining.count) : 0)
        // Each worker's totals count from the start of its term (its status's epoch).
        guard leading else { return }
        metrics.advance(.repairBytes, to: repair.bytesDone, generation: repair.epoch)
        metrics.advance(.repairSegments, "repaired", to: Int64(repair.segmentsRepaired), generation: repair.epoch)
        metrics.advance(.repairSegments, "failed", to: Int64(repair.segmentsFailed), generation: repair.epoch)
        metrics.advance(.repairSegments, "refused", to: Int64(repair.decisionsRefused), generation: repair.epoch)
        let gc = collector.status()
        metrics.advance(.gcShardsScanned, to: gc.shardsScanned, generation: gc.epoch)
        metrics.advance(.gcShardsDeleted, to: gc.shardsDeleted, generation: gc.epoch)
        metrics.advance(.gcBytesReclaimed, to: gc.bytesReclaimed, generation: gc.epoch)
        metrics.advance(.gcPasses, to: Int64(gc.passesCompleted), generation: gc.epoch)
        let scrub = scrub.status()
        metrics.advance(.scrubBytes, to: scrub.bytesVerified, generation: scrub.epoch)
        metrics.advance(.scrubCorrupt, to: scrub.corruptFound, generation: scrub.epoch)
        metrics.advance(.scrubPasses, to: Int64(scrub.passesCompleted), generation: scrub.epoch)
        metrics.advance(.rebalanceBytes, to: rebalance.bytesMoved, generation: rebalance.epoch)
    }

    /// Ready when its certificates load, the metadata store answers within 2 s, and it has
    /// heard from at least one storage node within `down_after`.
    func readiness() async -> Readiness {
        var checks: [String: String] = [:]
        do {
            _ = try TLSSetup.server(certificate: configuration.tls.certificate, key: configuration.tls.key, clientCA: nil)
            _ = try TLSSetup.client(ca: configuration.tls.clusterCA, certificate: configuration.tls.certificate, key: configuration.tls.key)
            checks["certificates"] = "ok"
        } catch {
            checks["certificates"] = "\(error)"
        }
        checks["metadata"] = await Readiness.check(within: .seconds(2), late: "the metadata store did not answer within 2 s") {
            [metadata] in
            do {
                _ = try await metadata.get(Keyspace.leader)
                return "ok"
            } catch {
                return "the metadata store does not answer: \(error)"
            }
        }
        let up = objects.topology.descriptors().filter(\.isUp).count
        checks["nodes"] = up > 0 ? "ok" : "no storage node heard from within down_after (\(configuration.downAfterSeconds) s)"
        return Readiness(checks: checks)
    }
}

/// What scrapes remember between them: series shown once keep being set (to 0 when gone), so
/// that a country or a count of healthy shards never keeps a stale value.
private final class ScrapeMemory: Sendable {
    let nodes = Mutex<[String: (country: String, region: String)]>([:])
    let countries = Mutex<Set<String>>([])
    let healthyHighest = Mutex(0)
}
