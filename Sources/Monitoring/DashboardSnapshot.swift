import Coordinator
import Foundation

/// The dashboard's JSON (`/api/state`): the sweep's progress with its task counts read from
/// the journal by the server, each worker, and the recent failures.
public struct DashboardSnapshot: Codable, Equatable, Sendable {
    /// Tasks by state, as the journal holds them.
    public struct TaskCounts: Codable, Equatable, Sendable {
        public var total: Int, queued: Int, running: Int, done: Int, failed: Int
    }

    /// The sweep's name, preset and run directory.
    public var sweep: String, preset: String, runDirectory: String
    /// Seconds since this coordinator started serving.
    public var elapsedSeconds: Double
    /// Tasks by state.
    public var tasks: TaskCounts
    /// The progress line: counts, pace and the time left at this pace.
    public var progress: String
    /// Each worker as last heard of.
    public var workers: [LiveSweepState.Worker]
    /// Recent failures, newest first.
    public var failures: [LiveSweepState.Failure]
    /// Results accepted so far (done tasks); the page fetches the report again when it changes.
    public var results: Int
    /// The time of the snapshot (seconds since 1970), against which `lastHeard` reads.
    public var time: Double

    /// The snapshot now: counts as the server last told `live` (from `journal` before it
    /// did), workers and failures from `live`; the pace
    /// counts results since `started`, when `doneAtStart` were done.
    static func now(journal: Journal, sweep: SweepSpec, runDirectory: URL, live: LiveSweepState, started: Date, doneAtStart: Int) throws -> Self {
        let counts = try live.counts ?? journal.stateCounts()
        let tasks = TaskCounts(total: counts.values.reduce(0, +), queued: counts[.queued] ?? 0, running: counts[.running] ?? 0,
                               done: counts[.done] ?? 0, failed: counts[.failed] ?? 0)
        let elapsed = Date().timeIntervalSince(started)
        var progress = "\(tasks.done)/\(tasks.total) done, \(tasks.running) running, \(tasks.queued) queued, \(tasks.failed) failed"
        let finishedHere = tasks.done - doneAtStart
        if finishedHere > 0 && tasks.queued + tasks.running > 0 {
            let perMinute = Double(finishedHere) / max(elapsed / 60, 1e-9)
            progress += String(format: " | %.1f tasks/min, ETA ", perMinute) + RemainingTime.describe(60 * Double(tasks.queued + tasks.running) / perMinute)
        } else if tasks.queued + tasks.running == 0 {
            progress += " | finished"
        }
        return Self(sweep: sweep.name, preset: sweep.preset, runDirectory: runDirectory.path, elapsedSeconds: elapsed, tasks: tasks,
                    progress: progress, workers: live.workers, failures: live.failures,
                    results: tasks.done, time: Date().timeIntervalSince1970)
    }
}
