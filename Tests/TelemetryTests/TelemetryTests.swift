import Foundation
import Logging
import Metrics
import Synchronization
import Telemetry
import Testing
import TestSupport

@Suite struct MetricCatalogTests {
    @Test func namesFollowPrometheusConventions() {
        var seen = Set<String>()
        for family in MetricFamily.all {
            #expect(seen.insert(family.name).inserted, "\(family.name) is declared twice")
            #expect(family.name.hasPrefix("coffre_"), "\(family.name)")
            #expect(family.name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(family.name)")
            switch family.kind {
            case .counter: #expect(family.name.hasSuffix("_total"), "a counter ends in _total: \(family.name)")
            case .histogram:
                #expect(family.name.hasSuffix("_seconds"), "durations in seconds: \(family.name)")
                #expect(family.buckets == family.buckets.sorted() && !family.buckets.isEmpty)
            case .gauge: #expect(!family.name.hasSuffix("_total"), "a gauge is not a total: \(family.name)")
            }
            #expect(!family.help.isEmpty && family.help.hasSuffix("."), "\(family.name) needs a help sentence")
            #expect(!family.labels.contains("le") && !family.labels.contains("instance") && !family.labels.contains("job"))
        }
    }

    /// Docs/metrics.md documents every metric, and nothing that does not exist.
    @Test func docsListEveryMetric() throws {
        let text = try String(contentsOfFile: repositoryRoot + "/Docs/metrics.md", encoding: .utf8)
        for family in MetricFamily.all {
            #expect(text.contains("`\(family.name)`"), "Docs/metrics.md does not list \(family.name)")
        }
        let documented = Set(text.matches(of: /`(coffre_[a-z_]+)`/).map { String($0.output.1) })
        let declared = Set(MetricFamily.all.map(\.name))
        #expect(documented.subtracting(declared).isEmpty, "documented but not declared: \(documented.subtracting(declared).sorted())")
    }
}

@Suite struct MetricsRegistryTests {
    @Test func expositionHasHelpTypeAndLabelledSamples() {
        let metrics = MetricsRegistry()
        metrics.counter(.httpRequests, "/v1/health", "GET", "200").increment()
        metrics.counter(.httpRequests, "/v1/health", "GET", "200").increment(by: 2)
        metrics.timer(.httpRequestDuration, "/v1/health", "GET").record(Duration.milliseconds(30))
        metrics.set(.storeUsed, to: 1234)
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains("# HELP coffre_http_requests_total Requests answered"))
        #expect(text.contains("# TYPE coffre_http_requests_total counter"))
        #expect(text.contains(#"coffre_http_requests_total{route="/v1/health",method="GET",code="200"} 3"#))
        #expect(text.contains("# TYPE coffre_http_request_duration_seconds histogram"))
        #expect(text.contains(#"coffre_http_request_duration_seconds_bucket{route="/v1/health",method="GET",le="0.05"} 1"#))
        #expect(text.contains(#"coffre_http_request_duration_seconds_bucket{route="/v1/health",method="GET",le="0.025"} 0"#))
        #expect(text.contains("coffre_store_used_bytes 1234"))
    }

    /// A counter fed from a status's running total goes up by the difference, and by the
    /// whole total when the status restarted (a worker's new term), even when the new term's
    /// total has already passed the old one's by the first scrape.
    @Test func advanceFollowsRunningTotalsAcrossRestarts() {
        let metrics = MetricsRegistry()
        for (total, term): (Int64, Int64) in [(0, 1), (100, 1), (250, 1), (250, 1), (40, 2), (90, 2), (300, 3)] {
            metrics.advance(.repairBytes, to: total, generation: term)
        }
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        // 100 + 150 + 0 + 40 (term 2) + 50 + 300 (term 3, above term 2's 90)
        #expect(text.contains("coffre_repair_bytes_total 640"), "\(text)")
    }

    @Test func aRemovedGaugeSeriesIsNoLongerShown() {
        let metrics = MetricsRegistry()
        metrics.set(.nodeUp, "fr-1", "FR", "paris", to: 1)
        metrics.set(.nodeUp, "fr-2", "FR", "paris", to: 0)
        metrics.remove(.nodeUp, "fr-2", "FR", "paris")
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains(#"node="fr-1""#) && !text.contains(#"node="fr-2""#), "\(text)")
    }

    @Test func scrapeRefreshersRunBeforeEachExposition() {
        let metrics = MetricsRegistry()
        let calls = Mutex(0)
        metrics.onScrape { metrics in
            let count = calls.withLock { $0 += 1; return $0 }
            metrics.set(.repairQueue, to: Double(count))
        }
        _ = metrics.exposition()
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains("coffre_repair_queued_segments 2"))
    }
}

@Suite struct JSONLogHandlerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
    }

    @Test func oneObjectPerLineWithDottedKeysAndEscapes() throws {
        let sink = Lines()
        var logger = Logger(label: "coffred.test") { label in JSONLogHandler(label: label) { sink.append($0) } }
        logger.logLevel = .debug
        logger[metadataKey: "coordinator.id"] = "coordinator-fr"
        logger.notice("drill \"fault\" on\nnext line", metadata: ["node.id": "fr-1", "drill": ["id": "d1", "mode": "kill"]])
        logger.trace("below the level")
        let lines = sink.lines.withLock { $0 }
        #expect(lines.count == 1)
        #expect(lines[0].hasSuffix("}\n") && lines[0].filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: String])
        #expect(object["level"] == "notice")
        #expect(object["logger"] == "coffred.test")
        #expect(object["message"] == "drill \"fault\" on\nnext line")
        #expect(object["coordinator.id"] == "coordinator-fr")
        #expect(object["node.id"] == "fr-1")
        #expect(object["drill.id"] == "d1" && object["drill.mode"] == "kill")
        let time = try #require(object["time"])
        #expect(time.hasSuffix("Z") && time.contains("."), "UTC with milliseconds: \(time)")
        #expect((try? Date(time, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))) != nil)
    }

    @Test func controlCharactersAreEscaped() throws {
        let sink = Lines()
        let logger = Logger(label: "t") { label in JSONLogHandler(label: label) { sink.append($0) } }
        logger.warning("bell \u{07} and tab \t and unicode é ✓")
        let line = try #require(sink.lines.withLock { $0.first })
        #expect(line.contains("\\u0007") && line.contains("\\t"))
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
        #expect(object?["message"] == "bell \u{07} and tab \t and unicode é ✓")
    }
}
