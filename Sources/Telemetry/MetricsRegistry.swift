public import CoreMetrics
public import Metrics
import Prometheus
import Synchronization

/// A daemon's metrics: swift-metrics handles over one Prometheus registry, and what a scrape
/// of `/metrics` answers.
///
/// Each daemon has its own registry (several servers can run in one test process); code records
/// through swift-metrics (`Counter`, `Timer`, `Gauge`) made by `factory`, which takes only the
/// names of `MetricFamily.all` with their declared labels and gives Prometheus their help text.
/// Figures that are states rather than events (a worker's queue, a node's usage) are read at
/// scrape time by the closures given to `onScrape`, so recording them costs nothing between
/// scrapes.
public final class MetricsRegistry: Sendable {
    let prometheus = PrometheusCollectorRegistry()
    /// The swift-metrics factory of this registry.
    public var factory: any MetricsFactory { CatalogFactory(registry: prometheus) }
    private let refreshers = Mutex<[@Sendable (MetricsRegistry) -> Void]>([])
    /// The last running total seen per counter series, for `advance`.
    private let totals = Mutex<[String: (generation: Int64, total: Int64)]>([:])

    public init() {}

    public func counter(_ family: MetricFamily, _ labels: String...) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: family.name, dimensions: Self.dimensions(family, labels), factory: factory)
    }

    public func timer(_ family: MetricFamily, _ labels: String...) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: family.name, dimensions: Self.dimensions(family, labels), factory: factory)
    }

    /// Sets a gauge.
    public func set(_ family: MetricFamily, _ labels: String..., to value: Double) {
        CoreMetrics.Gauge(label: family.name, dimensions: Self.dimensions(family, labels), factory: factory).record(value)
    }

    /// Advances a counter to a running total a status reports (a worker's bytes done): by the
    /// difference since the last call. `generation` is what the total counts from (a worker's
    /// term): in a new one the whole total is new, whatever the last total of the old one was.
    public func advance(_ family: MetricFamily, _ labels: String..., to total: Int64, generation: Int64 = 0) {
        let key = family.name + "\u{0}" + labels.joined(separator: "\u{0}")
        let delta = totals.withLock { totals -> Int64 in
            let last = totals[key]
            totals[key] = (generation, total)
            guard let last, last.generation == generation, total >= last.total else { return max(0, total) }
            return total - last.total
        }
        let counter = CoreMetrics.Counter(label: family.name, dimensions: Self.dimensions(family, labels), factory: factory)
        counter.increment(by: delta)  // by 0 too: the series is shown from the first scrape
    }

    /// Stops showing a gauge's series (a node that left the cluster).
    public func remove(_ family: MetricFamily, _ labels: String...) {
        precondition(family.kind == .gauge, "only gauges are removed: \(family.name)")
        let gauge = prometheus.makeGauge(name: family.name, labels: Self.dimensions(family, labels), help: family.help)
        prometheus.unregisterGauge(gauge)
    }

    /// Runs `refresh` before every scrape (it sets gauges and advances counters from statuses).
    public func onScrape(_ refresh: @escaping @Sendable (MetricsRegistry) -> Void) {
        refreshers.withLock { $0.append(refresh) }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, after the refreshers ran.
    public func exposition() -> [UInt8] {
        for refresh in refreshers.withLock({ $0 }) { refresh(self) }
        return prometheus.emitToBuffer()
    }

    private static func dimensions(_ family: MetricFamily, _ values: [String]) -> [(String, String)] {
        precondition(values.count == family.labels.count, "\(family.name) takes labels \(family.labels), given \(values.count)")
        return Array(zip(family.labels, values))
    }
}

/// The swift-metrics factory over a registry: names must be in `MetricFamily.all`, used as
/// their kind with their labels (a mistake is a programming error, caught by the first test
/// that records it).
struct CatalogFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    private func family(_ label: String, _ kind: MetricFamily.Kind, _ dimensions: [(String, String)]) -> MetricFamily {
        guard let family = MetricFamily.byName[label] else { preconditionFailure("metric \(label) is not in MetricFamily.all") }
        precondition(family.kind == kind, "\(label) is a \(family.kind), recorded as a \(kind)")
        precondition(dimensions.map(\.0) == family.labels, "\(label) takes labels \(family.labels), given \(dimensions.map(\.0))")
        return family
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        let family = family(label, .counter, dimensions)
        return registry.makeCounter(name: family.name, labels: dimensions, help: family.help)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        let family = family(label, .counter, dimensions)
        return registry.makeCounter(name: family.name, labels: dimensions, help: family.help)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if aggregate {
            let family = family(label, .histogram, dimensions)
            return registry.makeValueHistogram(name: family.name, labels: dimensions, buckets: family.buckets, help: family.help)
        }
        let family = family(label, .gauge, dimensions)
        return registry.makeGauge(name: family.name, labels: dimensions, help: family.help)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        let family = family(label, .gauge, dimensions)
        return registry.makeGauge(name: family.name, labels: dimensions, help: family.help)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let family = family(label, .histogram, dimensions)
        let buckets = family.buckets.map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
        return registry.makeDurationHistogram(name: family.name, labels: dimensions, buckets: buckets, help: family.help)
    }

    // Handles live as long as the daemon: nothing is ever unregistered.
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

extension CoreMetrics.Timer {
    /// Records a duration measured with `ContinuousClock`.
    public func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
