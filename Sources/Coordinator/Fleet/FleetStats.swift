import Foundation

/// What simulated workers measured, mergeable across workers and processes.
public struct FleetStats: Codable, Sendable, Equatable {
    /// A task handed to an idle worker: when the worker asked (sent its credit) and when the
    /// task arrived, seconds since 1970. The task's id lets a measurement subtract the time
    /// the task was not runnable yet (its inputs unfinished), which is the sweep's, not the
    /// coordinator's (`scripts/fleet-sim` reads when the inputs were done from the journal).
    public struct Dispatch: Codable, Sendable, Equatable {
        public var task: String, asked: Double, received: Double
    }

    /// Every dispatch to an idle worker.
    public var dispatches: [Dispatch] = []
    /// Seconds from result sent to `accepted` received.
    public var intake: [Double] = []
    /// The longest silence of the coordinator towards one worker beyond its heartbeat interval
    /// (0 when it always spoke within the interval): the coordinator's longest stall as a
    /// worker sees it, plus the simulator's own delay in reading.
    public var longestLateHeartbeat = 0.0
    /// The simulator loop's longest turn (its own delay, to tell it from the coordinator's).
    public var longestTurn = 0.0
    /// Results accepted, results dropped as duplicates, tasks cancelled while running.
    public var done = 0, duplicates = 0, cancelled = 0
    /// Faults acted out, reconnects after a silent coordinator, tasks of no template shape,
    /// artifacts the coordinator did not have.
    public var faults = 0, reconnects = 0, unknownTasks = 0, missingArtifacts = 0
    /// How often each task was handed to a worker (as a new start, not an adoption).
    public var started: [String: Int] = [:]

    /// Empty statistics.
    public init() {}

    mutating func noteGap(_ gap: Double, heartbeat: Double) {
        longestLateHeartbeat = max(longestLateHeartbeat, gap - heartbeat)
    }

    /// These statistics and `other`'s together.
    public mutating func merge(_ other: FleetStats) {
        dispatches += other.dispatches
        intake += other.intake
        longestLateHeartbeat = max(longestLateHeartbeat, other.longestLateHeartbeat)
        longestTurn = max(longestTurn, other.longestTurn)
        done += other.done
        duplicates += other.duplicates
        cancelled += other.cancelled
        faults += other.faults
        reconnects += other.reconnects
        unknownTasks += other.unknownTasks
        missingArtifacts += other.missingArtifacts
        started.merge(other.started, uniquingKeysWith: +)
    }

    /// Tasks handed out more than once.
    public var startedTwice: Int { started.values.filter { $0 > 1 }.count }

    /// The `fraction` quantile of `values` (0 when empty).
    public static func quantile(_ values: [Double], _ fraction: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction + 0.5))]
    }

    /// Seconds from credit sent to task received, per dispatch.
    public var dispatch: [Double] { dispatches.map { $0.received - $0.asked } }

    /// One line: counts, dispatch and intake p50/p99 in milliseconds, the late heartbeat.
    public var summary: String {
        String(format: "%d done, %d duplicate(s), %d started twice, %d cancelled, %d fault(s), %d reconnect(s); dispatch p50 %.1f ms p99 %.1f ms; intake p50 %.1f ms p99 %.1f ms; longest late heartbeat %.0f ms (simulator's longest turn %.0f ms)",
               done, duplicates, startedTwice, cancelled, faults, reconnects,
               Self.quantile(dispatch, 0.5) * 1000, Self.quantile(dispatch, 0.99) * 1000,
               Self.quantile(intake, 0.5) * 1000, Self.quantile(intake, 0.99) * 1000,
               longestLateHeartbeat * 1000, longestTurn * 1000)
    }
}
