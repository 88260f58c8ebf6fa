import Coordinator
import Protocol

/// Several monitors heard as one (the dashboard's state and the metrics).
public final class MonitorFanout: SweepMonitor {
    private let monitors: [any SweepMonitor]

    /// A fan-out to `monitors`, in order.
    public init(_ monitors: [any SweepMonitor]) { self.monitors = monitors }

    public func workerJoined(_ hello: Hello, at time: Double) { for m in monitors { m.workerJoined(hello, at: time) } }
    public func workerHeard(_ worker: String, at time: Double) { for m in monitors { m.workerHeard(worker, at: time) } }
    public func workerLost(_ worker: String, at time: Double) { for m in monitors { m.workerLost(worker, at: time) } }
    public func taskStarted(_ task: String, summary: String, worker: String, attempt: Int) {
        for m in monitors { m.taskStarted(task, summary: summary, worker: worker, attempt: attempt) }
    }
    public func taskProgressed(_ progress: Protocol.Progress, summary: String, worker: String) {
        for m in monitors { m.taskProgressed(progress, summary: summary, worker: worker) }
    }
    public func taskDone(_ task: String, summary: String, worker: String, seconds: Double) {
        for m in monitors { m.taskDone(task, summary: summary, worker: worker, seconds: seconds) }
    }
    public func taskFailed(_ task: String, summary: String, worker: String, message: String, givenUp: Bool) {
        for m in monitors { m.taskFailed(task, summary: summary, worker: worker, message: message, givenUp: givenUp) }
    }
    public func taskRequeued(_ task: String, summary: String, worker: String, why: String) {
        for m in monitors { m.taskRequeued(task, summary: summary, worker: worker, why: why) }
    }
    public func frameRejected(reason: String) { for m in monitors { m.frameRejected(reason: reason) } }
    public func artifactBytes(_ count: Int, sent: Bool) { for m in monitors { m.artifactBytes(count, sent: sent) } }
    public func journalCommitted(seconds: Double) { for m in monitors { m.journalCommitted(seconds: seconds) } }
    public func loopTurned(seconds: Double) { for m in monitors { m.loopTurned(seconds: seconds) } }
    public func tasksCounted(_ counts: [Journal.State: Int]) { for m in monitors { m.tasksCounted(counts) } }
}
