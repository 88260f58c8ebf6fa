import Foundation

/// File work of the socket thread done on one other thread, in the order it was asked for:
/// storing uploads (hash and write), reading artifacts to serve, and checking a result's
/// outputs (weights and masks loaded for the task's architecture, 0.1–0.7 s at width 64).
/// Each job's answer is handed back to the socket thread by `drain`, in order, so the state
/// stays the socket thread's alone. One serial queue keeps the order that matters: an upload
/// is stored before the result that names it is checked. Results queued are bounded by the
/// workers' slots (a worker reports only the tasks it holds); uploads are not bounded yet: a
/// file thread that falls behind holds every epoch checkpoint that waits (docs/fleet-scale.md).
final class FileWork: @unchecked Sendable {
    private let queue = DispatchQueue(label: "prunesweep-files")
    private let lock = NSLock()
    private var answers: [@Sendable () -> Void] = []
    private var queued = 0
    private let wake: @Sendable () -> Void

    /// File work whose finished jobs call `wake` (the socket loop's, so `drain` runs soon).
    init(wake: @escaping @Sendable () -> Void) { self.wake = wake }

    /// Jobs asked for and not yet drained.
    var pending: Int { lock.withLock { queued } }

    /// Runs `job` off the socket thread; `then` gets its value on the socket thread (`drain`).
    func run<T: Sendable>(_ job: @escaping @Sendable () -> T, then: @escaping @Sendable (T) -> Void) {
        lock.withLock { queued += 1 }
        queue.async { [self] in
            let value = job()
            lock.withLock { answers.append { then(value) } }
            wake()
        }
    }

    /// Hands the finished jobs' values to their `then`, in the order the jobs were asked for
    /// (call on the socket thread).
    func drain() {
        let ready = lock.withLock { () -> [@Sendable () -> Void] in
            defer { answers.removeAll() }
            return answers
        }
        for answer in ready {
            answer()
            lock.withLock { queued -= 1 }
        }
    }

    /// Waits for every job asked for so far to finish, then drains (a stopping server's last turn).
    func finish() {
        queue.sync {}
        drain()
    }
}
