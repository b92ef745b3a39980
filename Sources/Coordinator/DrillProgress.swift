public import CoffreAPI
import CoffreModel

/// What the leader saw at one step of a drill. Everything the drill's decisions depend on:
/// `DrillProgress.advance` reads nothing else, so its tests drive it step by step.
public struct DrillObservation: Sendable {
    /// Milliseconds since 1970.
    public var now: Int64
    /// Every drilled node is down as the cluster sees it (false when no node is drilled).
    public var drilledDown: Bool
    /// Every drilled node answers.
    public var drilledUp: Bool
    /// The leader counts a drilled node as lost: its shards are being rebuilt elsewhere.
    public var drilledLost: Bool
    /// The leader's repair counters.
    public var repair: DrillRecord.Baseline
    /// The redundancy check over every segment, when one was made at this step.
    public var check: DrillCheck?

    public init(now: Int64, drilledDown: Bool, drilledUp: Bool, drilledLost: Bool, repair: DrillRecord.Baseline, check: DrillCheck?) {
        self.now = now
        self.drilledDown = drilledDown
        self.drilledUp = drilledUp
        self.drilledLost = drilledLost
        self.repair = repair
        self.check = check
    }
}

/// Redundancy over every segment at one moment.
public struct DrillCheck: Sendable {
    /// The fewest healthy shards of a segment, not counting drilled nodes while the fault is on.
    public var lowestHealthy: Int?
    /// Segments under k + margin that way: the drill must end (a real failure elsewhere).
    public var atRisk: Int
    /// The riskiest of them, for the record (`object/segment: n healthy`).
    public var riskiest: String?
    /// Nodes down outside the drill.
    public var downElsewhere: [String]
    /// Segments without every shard on a healthy node.
    public var degraded: Int
    public var segments: Int
    public var debtSegments: Int

    public init(lowestHealthy: Int?, atRisk: Int, riskiest: String?, downElsewhere: [String], degraded: Int, segments: Int, debtSegments: Int) {
        self.lowestHealthy = lowestHealthy
        self.atRisk = atRisk
        self.riskiest = riskiest
        self.downElsewhere = downElsewhere
        self.degraded = degraded
        self.segments = segments
        self.debtSegments = debtSegments
    }
}

/// What the leader does to the drilled processes after a step.
public enum DrillDirective: Hashable, Sendable {
    /// Put the fault on (again: a node restarted meanwhile lost it).
    case applyFault
    /// Take it off (again: one that did not answer the last time).
    case liftFault
}

/// A drill's decisions, with no I/O: observation in, the record advanced and what to do to the
/// drilled processes out. The fault stays on until its TTL, `drill stop`, or an abort when a
/// real failure elsewhere takes a segment under k + margin; after it is lifted the drill
/// watches for the nodes to answer and for every segment to have all its shards on healthy
/// nodes again, then ends.
public enum DrillProgress {
    public static func advance(_ record: inout DrillRecord, _ seen: DrillObservation) -> [DrillDirective] {
        guard record.phase != .ended else { return [] }
        count(&record, seen.repair)
        let now = seen.now
        let seconds = { (since: Int64) in String(format: "%.1f s", Double(now - since) / 1000) }
        if record.repairStartedAt == nil, seen.drilledLost {
            record.repairStartedAt = now
            log(&record, now, "repair started: drilled nodes counted as lost after \(seconds(record.startedAt))")
        }
        if let check = seen.check {
            record.segments = check.segments
            record.degradedSegments = check.degraded
            record.debtSegments = check.debtSegments
        }
        switch record.phase {
        case .faulted:
            if record.detectedAt == nil, seen.drilledDown {
                record.detectedAt = now
                log(&record, now, "every drilled node seen down after \(seconds(record.startedAt))")
            }
            if let check = seen.check {
                if let lowest = check.lowestHealthy { record.lowestHealthySeen = min(record.lowestHealthySeen ?? lowest, lowest) }
                if record.fullRedundancyAt == nil, record.repairStartedAt != nil, check.degraded == 0 {
                    record.fullRedundancyAt = now
                    log(&record, now, "full redundancy again (rebuilt elsewhere) after \(seconds(record.startedAt))")
                }
                if check.atRisk > 0 {
                    let why = "\(check.atRisk) segments under k + margin (\(record.dataShards) + \(record.margin))"
                        + (check.riskiest.map { ", e.g. \($0)" } ?? "")
                        + (check.downElsewhere.isEmpty ? "" : "; down outside the drill: \(check.downElsewhere.joined(separator: ", "))")
                    record.abortReason = why
                    return lift(&record, now, "aborted", why)
                }
            }
            if record.stopRequested { return lift(&record, now, "stopped", "drill stop") }
            if now >= record.liftAt { return lift(&record, now, "ttl", "TTL of \(record.ttlSeconds) s") }
            return [.applyFault]
        case .recovering:
            if record.backAt == nil, seen.drilledUp {
                record.backAt = now
                log(&record, now, "every drilled node answers again, \(seconds(record.liftedAt ?? now)) after the lift")
            }
            if let check = seen.check, record.backAt != nil, check.degraded == 0 {
                if record.fullRedundancyAt == nil {
                    record.fullRedundancyAt = now
                    log(&record, now, "full redundancy after \(seconds(record.startedAt))")
                }
                end(&record, now, "recovered")
                return []
            }
            if now - (record.liftedAt ?? now) > Int64(Limits.drillRecoverySecondsMax) * 1000 {
                let nodes = record.backAt == nil ? "drilled nodes not all back" : "drilled nodes back"
                end(&record, now, "not recovered within \(Limits.drillRecoverySecondsMax) s: \(record.degradedSegments) segments degraded, \(nodes)")
                return []
            }
            return [.liftFault]
        case .ended:
            return []
        }
    }

    /// Repair done since the fault went on, across leader changes (a new leader's counters
    /// start at zero: what the last one counted is carried over).
    static func count(_ record: inout DrillRecord, _ repair: DrillRecord.Baseline) {
        if record.baseline.epoch == 0 {
            // The first step: the counters as the fault goes on (epoch 0: not read yet).
            record.baseline = repair
        } else if repair.epoch != record.baseline.epoch {
            record.leaderChanged = true
            record.carried = .init(
                epoch: 0, segmentsRepaired: record.segmentsRebuilt, bytesDone: record.bytesRebuilt,
                placementDebtCreated: record.placementDebtCreated)
            record.baseline = .init(epoch: repair.epoch, segmentsRepaired: 0, bytesDone: 0, placementDebtCreated: 0)
        }
        let carried = record.carried ?? .init(epoch: 0, segmentsRepaired: 0, bytesDone: 0, placementDebtCreated: 0)
        record.segmentsRebuilt = carried.segmentsRepaired + max(0, repair.segmentsRepaired - record.baseline.segmentsRepaired)
        record.bytesRebuilt = carried.bytesDone + max(0, repair.bytesDone - record.baseline.bytesDone)
        record.placementDebtCreated = carried.placementDebtCreated + max(0, repair.placementDebtCreated - record.baseline.placementDebtCreated)
    }

    private static func lift(_ record: inout DrillRecord, _ now: Int64, _ reason: String, _ why: String) -> [DrillDirective] {
        record.phase = .recovering
        record.liftedAt = now
        record.liftReason = reason
        log(&record, now, "fault lifted (\(reason)): \(why)")
        return [.liftFault]
    }

    private static func end(_ record: inout DrillRecord, _ now: Int64, _ outcome: String) {
        record.phase = .ended
        record.endedAt = now
        record.outcome = outcome
        log(&record, now, "ended: \(outcome)")
    }

    static func log(_ record: inout DrillRecord, _ now: Int64, _ what: String) {
        record.events.append(.init(at: now, what: what))
        if record.events.count > Limits.drillEventsMax { record.events.remove(at: Limits.drillEventsMax / 2) }
    }
}
