import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A thread of its own for the coordinator's work beside the socket thread (file lanes, the
/// report), at a lower scheduling priority: a higher nice value, which Linux keeps per
/// thread. When the coordinator's core is busy the kernel runs the socket thread first, so
/// this work does not stretch its loop turns (on one core shared with two lanes and a report
/// writer, a turn of 10 ms of CPU took 20–30 ms of wall time). Jobs run one at a time, in
/// the order given. The thread ends when the object is released, after the jobs given.
final class BackgroundThread: Sendable {
    private final class Jobs: @unchecked Sendable {
        let condition = NSCondition()
        var waiting: [@Sendable () -> Void] = []
        var next = 0, running = false, stopping = false
    }

    private let jobs = Jobs()

    /// Starts the thread `name`, `niceness` steps below the priority of the thread that makes
    /// it (an unprivileged process can lower a thread's priority, never raise it back).
    init(name: String, niceness: Int32) {
        let jobs = self.jobs
        let thread = Thread {
            #if canImport(Glibc)
            // `who` 0 is the calling thread: Linux keeps the nice value per thread.
            let current = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, current + niceness)
            #endif
            jobs.condition.lock()
            while true {
                while jobs.next == jobs.waiting.count && !jobs.stopping { jobs.condition.wait() }
                guard jobs.next < jobs.waiting.count else { break }
                let job = jobs.waiting[jobs.next]
                jobs.next += 1
                if jobs.next == jobs.waiting.count {
                    jobs.waiting.removeAll(keepingCapacity: true)
                    jobs.next = 0
                }
                jobs.running = true
                jobs.condition.unlock()
                job()
                jobs.condition.lock()
                jobs.running = false
                jobs.condition.broadcast()
            }
            jobs.condition.unlock()
        }
        thread.name = name
        thread.start()
    }

    deinit {
        jobs.condition.lock()
        jobs.stopping = true
        jobs.condition.broadcast()
        jobs.condition.unlock()
    }

    /// Runs `job` on the thread after the jobs given before it.
    func async(_ job: @escaping @Sendable () -> Void) {
        jobs.condition.lock()
        jobs.waiting.append(job)
        jobs.condition.broadcast()
        jobs.condition.unlock()
    }

    /// Whether every job given so far has run.
    var isIdle: Bool {
        jobs.condition.lock()
        defer { jobs.condition.unlock() }
        return jobs.next == jobs.waiting.count && !jobs.running
    }

    /// Waits until every job given so far has run.
    func waitUntilIdle() {
        jobs.condition.lock()
        while jobs.next < jobs.waiting.count || jobs.running { jobs.condition.wait() }
        jobs.condition.unlock()
    }
}
