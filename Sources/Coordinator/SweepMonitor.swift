import Foundation
import Protocol

/// Hears what a sweep's server does, for a live view or metrics (the coordinator's dashboard
/// and `/metrics` implement it). The server calls it on its socket thread between messages,
/// so an implementation records and returns: no I/O, no waiting on anything slow.
public protocol SweepMonitor: AnyObject, Sendable {
    /// A worker's `hello` was accepted (`time`: seconds since 1970).
    func workerJoined(_ hello: Hello, at time: Double)
    /// A message came from a worker: the latest sign of its life.
    func workerHeard(_ worker: String, at time: Double)
    /// A worker fell silent past the liveness limit and was dropped.
    func workerLost(_ worker: String, at time: Double)
    /// An attempt of a task went to a worker.
    func taskStarted(_ task: String, summary: String, worker: String, attempt: Int)
    /// A worker finished an epoch of a task.
    func taskProgressed(_ progress: Protocol.Progress, summary: String, worker: String)
    /// A task's result was accepted (`seconds`: from dispatch to result).
    func taskDone(_ task: String, summary: String, worker: String, seconds: Double)
    /// An attempt failed with `message`; `givenUp` when the task failed for good.
    func taskFailed(_ task: String, summary: String, worker: String, message: String, givenUp: Bool)
    /// A task was taken from its worker (lost or stalled) and went back to the queue.
    func taskRequeued(_ task: String, summary: String, worker: String, why: String)
    /// A frame was rejected as malformed; `reason` is its kind.
    func frameRejected(reason: String)
    /// Artifact bytes crossed the wire: `sent` to a worker, or received from one.
    func artifactBytes(_ count: Int, sent: Bool)
    /// A journal transaction committed in `seconds`.
    func journalCommitted(seconds: Double)
    /// The socket loop ended a turn that took `seconds`: while it runs, no message is read
    /// and no answer or heartbeat goes out (the coordinator's stall, as workers feel it).
    func loopTurned(seconds: Double)
    /// The tasks by state, as the journal holds them, after a loop turn that changed them
    /// (and once at the start): the dashboard and metrics read them without the journal.
    func tasksCounted(_ counts: [Journal.State: Int])
}
