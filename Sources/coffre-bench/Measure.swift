import Foundation

/// Monotonic seconds.
func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// One benchmark result line.
struct Result: Encodable {
    let name: String
    let value: Double
    let unit: String
    let baseline: Double
    let ratio: Double
}

/// Runs `ours` and `baseline` in alternation for `rounds` rounds and prints the medians.
///
/// Alternating, rather than running one then the other, spreads the noise of a shared
/// machine over both sides evenly. Each closure returns the amount of work it did (bytes or
/// operations); the figure is work / seconds, scaled by `scale` (1e9 for GB/s).
func compare(
    _ name: String, unit: String, scale: Double, rounds: Int,
    ours: () throws -> Double, baseline: () throws -> Double
) rethrows {
    var oursRates: [Double] = []
    var baselineRates: [Double] = []
    // One warm-up of each: page faults, lazy tables, CPU frequency.
    _ = try ours()
    _ = try baseline()
    for _ in 0..<rounds {
        var start = now()
        var work = try baseline()
        baselineRates.append(work / (now() - start) / scale)
        start = now()
        work = try ours()
        oursRates.append(work / (now() - start) / scale)
    }
    report(name, unit: unit, value: median(oursRates), baseline: median(baselineRates))
}

func report(_ name: String, unit: String, value: Double, baseline: Double) {
    let result = Result(
        name: name, value: rounded(value), unit: unit, baseline: rounded(baseline),
        ratio: rounded(baseline > 0 ? value / baseline : 0))
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try! encoder.encode(result), as: UTF8.self))
    fflush(nil)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

/// Page-aligned memory filled with non-trivial bytes.
func filledBuffer(_ count: Int, seed: UInt8 = 1) -> UnsafeMutableRawBufferPointer {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 4096)
    var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15
    let words = buffer.bindMemory(to: UInt64.self)
    for i in 0..<words.count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        words[i] = state
    }
    for i in (words.count * 8)..<count { buffer[i] = UInt8(truncatingIfNeeded: i) }
    return buffer
}

/// Runs one timed phase and returns its duration in seconds. The phase's monotonic start and
/// end go to standard error, so that a system-wide profile (`perf record -k CLOCK_MONOTONIC`)
/// can be cut to it with `perf report --time START,END`.
func timed(_ phase: String, _ work: () async throws -> Void) async rethrows -> Double {
    let start = now()
    try await work()
    let end = now()
    FileHandle.standardError.write(Data("phase \(phase) \(String(format: "%.6f", start)),\(String(format: "%.6f", end))\n".utf8))
    return end - start
}
