public import CoffreAPI
import CoffreModel
import Foundation
public import Hummingbird
import Synchronization

/// The fault-injecting layer of a drill, in front of a process's handlers: while a fault is
/// on, requests are refused (`stop`), held unanswered (`blackhole`), or delayed and some
/// dropped (`slow`). The fault carries its own expiry, so a process lifts it by itself when
/// nobody does.
public final class FaultGate: Sendable {
    private let fault = Mutex<NodeFault?>(nil)

    public init() {}

    public func set(_ value: NodeFault?) { fault.withLock { $0 = value } }

    /// The fault in force now, if any (an expired one is forgotten).
    public var current: NodeFault? {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return fault.withLock { fault in
            if let value = fault, value.untilMillis <= now { fault = nil }
            return fault
        }
    }

    /// Lets a request through, or applies the fault to it.
    public func pass() async throws {
        guard let fault = current else { return }
        switch fault.mode {
        case .external:
            return
        case .stop:
            throw APIError(.unavailable, "stopped by drill \(fault.drill)")
        case .blackhole:
            // Held until the fault goes (the peer's timeout usually comes first), then dropped.
            while let held = current, held.drill == fault.drill, held.mode == .blackhole {
                try await Task.sleep(for: .milliseconds(100))
            }
            throw APIError(.unavailable, "held by drill \(fault.drill)")
        case .slow:
            try await Task.sleep(for: .milliseconds(fault.latencyMilliseconds))
            if fault.lossPercent > 0, Int.random(in: 0..<100) < fault.lossPercent {
                throw APIError(.unavailable, "dropped by drill \(fault.drill)")
            }
        }
    }
}

/// Applies a `FaultGate` to every request except those to `exempt` paths (the fault's own
/// endpoint, so it can be lifted).
public struct FaultMiddleware<Context: RequestContext>: RouterMiddleware {
    let gate: FaultGate
    let exempt: @Sendable (String) -> Bool

    public init(gate: FaultGate, exempt: @escaping @Sendable (String) -> Bool) {
        self.gate = gate
        self.exempt = exempt
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !exempt(request.uri.path) { try await gate.pass() }
        return try await next(request, context)
    }
}
