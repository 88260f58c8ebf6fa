import Foundation
import TaskRuntime

/// The part of `coordinator status` about heterogeneous workers: every attempt of each task
/// that had a backup copy (which copy won, which was superseded), and each worker's learned
/// training speed.
public enum CopiesStatus {
    /// The lines to print, empty when the sweep had no backup and learned no speed.
    public static func lines(_ journal: Journal) throws -> [String] {
        var lines: [String] = []
        let backedUp = try journal.backedUpTasks()
        if !backedUp.isEmpty { lines.append("backup copies (\(backedUp.count) task(s)):") }
        for task in backedUp {
            let summary = try journal.task(task).flatMap { try? JSONDecoder().decode(TaskSpec.self, from: Data($0.spec.utf8)) }?.summary ?? String(task.prefix(12))
            lines.append("  \(summary):")
            for attempt in try journal.attemptRecords(task) {
                let role = attempt.backupOf.map { ", backup of attempt \($0)" } ?? ""
                lines.append("    attempt \(attempt.number) on \(attempt.worker)\(role): \(attempt.outcome ?? "running")")
            }
        }
        let speeds = try journal.speeds()
        if !speeds.isEmpty { lines.append("learned speeds (images/s of epoch wall time):") }
        for speed in speeds {
            lines.append("  \(speed.worker) on \(speed.host): \(String(format: "%.1f", speed.imagesPerSecond)) images/s, \(speed.workload)")
        }
        return lines
    }
}
