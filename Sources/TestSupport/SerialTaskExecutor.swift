import Foundation

/// A task executor that runs every job on one thread, first in first out.
///
/// Code run under `withTaskExecutorPreference(executor)` — and every child task it starts in
/// a task group or with `async let` — interleaves in one order decided by the order jobs are
/// enqueued, not by how the global executor's threads happen to race. With every other
/// source of time and randomness injected, that makes a run replayable: the deterministic
/// simulation runs on one of these. (Unstructured `Task {}` does not inherit the preference:
/// code meant to replay starts none.)
public final class SerialTaskExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var jobs: [UnownedJob] = []
    private var head = 0
    private var stopped = false

    public init(name: String = "serial-executor") {
        let thread = Thread { [self] in drain() }
        thread.name = name
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Ends the thread once the jobs enqueued so far have run.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func drain() {
        while true {
            condition.lock()
            while head == jobs.count && !stopped { condition.wait() }
            if head == jobs.count {
                condition.unlock()
                return
            }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
