import Coordinator
import CoreMetrics
import Foundation
import Metrics
import Prometheus
import Protocol
import Synchronization

/// The sweep's metrics through swift-metrics, exposed in Prometheus' text format at `/metrics`:
/// tasks by state (as the server counts them after each turn that changed them), results,
/// retries, lost workers, rejected frames, per-worker images/s and epoch seconds, artifact
/// bytes moved, the journal's commit latency, and the socket loop's turns (a histogram, and the
/// longest since the start: the coordinator's longest stall). The counters count from the coordinator's
/// start, as Prometheus counters do; its own registry keeps them apart from anything else.
public final class SweepMetrics: SweepMonitor {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let results, retries, lostWorkers, rejectedFrames, bytesSent, bytesReceived: CoreMetrics.Counter
    private let commitLatency, loopTurns: CoreMetrics.Timer
    private let longestTurn: CoreMetrics.Gauge
    private let longestTurnSeconds = Mutex(0.0)
    private let tasks: [(Journal.State, CoreMetrics.Gauge)]
    private let taskCounts = Mutex<[Journal.State: Int]?>(nil)
    private let perWorker = Mutex<[String: (imagesPerSecond: CoreMetrics.Gauge, epochSeconds: CoreMetrics.Gauge)]>([:])

    /// Metrics in a registry of their own.
    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // SQLite commits take from a fraction of a millisecond (page cache) to a second (a slow disk).
        factory.defaultDurationHistogramBuckets = [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                                   .milliseconds(10), .milliseconds(20), .milliseconds(50), .milliseconds(100),
                                                   .milliseconds(250), .milliseconds(500), .seconds(1)]
        self.factory = factory
        results = CoreMetrics.Counter(label: "prunesweep_results_total", factory: factory)
        retries = CoreMetrics.Counter(label: "prunesweep_retries_total", factory: factory)
        lostWorkers = CoreMetrics.Counter(label: "prunesweep_lost_workers_total", factory: factory)
        rejectedFrames = CoreMetrics.Counter(label: "prunesweep_rejected_frames_total", factory: factory)
        bytesSent = CoreMetrics.Counter(label: "prunesweep_artifact_bytes_total", dimensions: [("direction", "sent")], factory: factory)
        bytesReceived = CoreMetrics.Counter(label: "prunesweep_artifact_bytes_total", dimensions: [("direction", "received")], factory: factory)
        commitLatency = CoreMetrics.Timer(label: "prunesweep_journal_commit_seconds", factory: factory)
        loopTurns = CoreMetrics.Timer(label: "prunesweep_loop_turn_seconds", factory: factory)
        longestTurn = CoreMetrics.Gauge(label: "prunesweep_loop_turn_longest_seconds", factory: factory)
        tasks = [Journal.State.queued, .running, .done, .failed].map { state in
            (state, CoreMetrics.Gauge(label: "prunesweep_tasks", dimensions: [("state", state.rawValue)], factory: factory))
        }
    }

    /// The metrics in Prometheus' text exposition format, with the task gauges as the server
    /// last counted them (read from `journal` before it did).
    public func exposition(journal: Journal) throws -> String {
        let counts = try taskCounts.withLock { $0 } ?? journal.stateCounts()
        for (state, gauge) in tasks { gauge.record(counts[state] ?? 0) }
        return registry.emitToString()
    }

    public func workerJoined(_ hello: Hello, at time: Double) {}
    public func workerHeard(_ worker: String, at time: Double) {}
    public func workerLost(_ worker: String, at time: Double) { lostWorkers.increment() }

    public func taskStarted(_ task: String, summary: String, worker: String, attempt: Int) {
        // Every attempt after a task's first is a retry (after an error, a lost worker or a stall).
        if attempt > 1 { retries.increment() }
    }

    public func taskProgressed(_ progress: Protocol.Progress, summary: String, worker: String) {
        let gauges = perWorker.withLock { all in
            if let known = all[worker] { return known }
            let made = (CoreMetrics.Gauge(label: "prunesweep_worker_images_per_second", dimensions: [("worker", worker)], factory: factory),
                        CoreMetrics.Gauge(label: "prunesweep_worker_epoch_seconds", dimensions: [("worker", worker)], factory: factory))
            all[worker] = made
            return made
        }
        if let rate = progress.metrics["imagesPerSecond"] { gauges.imagesPerSecond.record(rate) }
        if let seconds = progress.metrics["seconds"] { gauges.epochSeconds.record(seconds) }
    }

    public func taskDone(_ task: String, summary: String, worker: String, seconds: Double) { results.increment() }
    public func taskFailed(_ task: String, summary: String, worker: String, message: String, givenUp: Bool) {}
    public func taskRequeued(_ task: String, summary: String, worker: String, why: String) {}
    public func frameRejected(reason: String) { rejectedFrames.increment() }

    public func artifactBytes(_ count: Int, sent: Bool) {
        (sent ? bytesSent : bytesReceived).increment(by: count)
    }

    public func tasksCounted(_ counts: [Journal.State: Int]) { taskCounts.withLock { $0 = counts } }
    public func journalCommitted(seconds: Double) { commitLatency.recordNanoseconds(Int64(seconds * 1e9)) }

    public func loopTurned(seconds: Double) {
        loopTurns.recordNanoseconds(Int64(seconds * 1e9))
        let longer = longestTurnSeconds.withLock { longest in
            guard seconds > longest else { return false }
            longest = seconds
            return true
        }
        if longer { longestTurn.record(seconds) }
    }
}
