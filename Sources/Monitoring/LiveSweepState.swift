import Coordinator
import Foundation
import Protocol
import Synchronization

/// What the dashboard shows of the sweep beyond the journal: each worker as it was last heard
/// of, and the recent failures with their messages. Kept from the server's events.
public final class LiveSweepState: SweepMonitor {
    /// A worker as the dashboard shows it.
    public struct Worker: Codable, Equatable, Sendable {
        /// Its name, host and device (in words), and the threads it computes with.
        public var name: String, host: String, device: String, threads: Int
        /// `idle`, `running` or `lost`.
        public var state: String
        /// The task it runs, with its latest epoch and the epochs in all.
        public var task: String?, epoch: Int?, epochs: Int?
        /// Training images per second and seconds of its latest epoch, and that epoch's test accuracy.
        public var imagesPerSecond: Double?, epochSeconds: Double?, testAccuracy: Double?
        /// When it was last heard from (seconds since 1970).
        public var lastHeard: Double
    }

    /// A failed attempt.
    public struct Failure: Codable, Equatable, Sendable {
        /// When (seconds since 1970), on which worker, which task.
        public var time: Double, worker: String, task: String
        /// What went wrong, as the worker (or the output check) said.
        public var message: String
        /// Whether the task failed for good (else it retries elsewhere).
        public var givenUp: Bool
    }

    /// The failures kept for the page: the most recent ones.
    public static let failuresKept = 50

    private let state = Mutex<(workers: [String: Worker], failures: [Failure])>(([:], []))
    private let taskCounts = Mutex<[Journal.State: Int]?>(nil)

    /// An empty state.
    public init() {}

    /// The workers by name.
    public var workers: [Worker] { state.withLock { $0.workers.values.sorted { $0.name < $1.name } } }
    /// The tasks by state as the server last counted them (nil before it did).
    public var counts: [Journal.State: Int]? { taskCounts.withLock { $0 } }
    /// The recent failures, newest first.
    public var failures: [Failure] { state.withLock { Array($0.failures.reversed()) } }

    public func workerJoined(_ hello: Hello, at time: Double) {
        let worker = Worker(name: hello.worker, host: hello.host, device: hello.device ?? "cpu", threads: hello.threads, state: "idle",
                            lastHeard: time)
        state.withLock { $0.workers[hello.worker] = worker }
    }

    public func workerHeard(_ worker: String, at time: Double) {
        state.withLock { $0.workers[worker]?.lastHeard = time }
    }

    public func workerLost(_ worker: String, at time: Double) {
        state.withLock { s in
            s.workers[worker]?.state = "lost"
            s.workers[worker]?.task = nil
        }
    }

    public func taskStarted(_ task: String, summary: String, worker: String, attempt: Int) {
        state.withLock { s in
            s.workers[worker]?.state = "running"
            s.workers[worker]?.task = summary
            s.workers[worker]?.epoch = nil
            s.workers[worker]?.epochs = nil
        }
    }

    public func taskProgressed(_ progress: Protocol.Progress, summary: String, worker: String) {
        state.withLock { s in
            s.workers[worker]?.task = summary
            s.workers[worker]?.epoch = progress.epoch
            s.workers[worker]?.epochs = progress.epochs
            s.workers[worker]?.imagesPerSecond = progress.metrics["imagesPerSecond"]
            s.workers[worker]?.epochSeconds = progress.metrics["seconds"]
            s.workers[worker]?.testAccuracy = progress.metrics["testAccuracy"]
        }
    }

    public func taskDone(_ task: String, summary: String, worker: String, seconds: Double) { idle(worker) }

    public func taskFailed(_ task: String, summary: String, worker: String, message: String, givenUp: Bool) {
        let failure = Failure(time: Date().timeIntervalSince1970, worker: worker, task: summary, message: message, givenUp: givenUp)
        state.withLock { s in
            s.failures.append(failure)
            if s.failures.count > Self.failuresKept { s.failures.removeFirst(s.failures.count - Self.failuresKept) }
        }
        idle(worker)
    }

    public func taskRequeued(_ task: String, summary: String, worker: String, why: String) { idle(worker) }

    public func frameRejected(reason: String) {}
    public func artifactBytes(_ count: Int, sent: Bool) {}
    public func journalCommitted(seconds: Double) {}
    public func loopTurned(seconds: Double) {}
    public func tasksCounted(_ counts: [Journal.State: Int]) { taskCounts.withLock { $0 = counts } }

    private func idle(_ worker: String) {
        state.withLock { s in
            guard s.workers[worker]?.state == "running" else { return }
            s.workers[worker]?.state = "idle"
            s.workers[worker]?.task = nil
            s.workers[worker]?.epoch = nil
            s.workers[worker]?.epochs = nil
        }
    }
}
