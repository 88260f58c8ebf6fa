import Foundation
import TaskRuntime

/// Real outputs for simulated workers: the outputs, last checkpoint and step time of every
/// task of a sweep that real workers ran (the fleet simulator's template, a one-seed smoke
/// sweep), looked up by a task's shape without its seed. A simulated task of seed N returns
/// the outputs of the template task of the same shape, so the coordinator's output checks
/// load real weights and masks, and the masks a training reads agree with its metrics.
public struct FleetTemplate: Sendable {
    /// What the template's task of one shape produced.
    public struct Entry: Sendable {
        /// Output artifacts by role, the last epoch checkpoint (trainings), and the seconds the
        /// real worker took.
        public var outputs: [String: String], checkpoint: String?, seconds: Double
    }

    /// Entries by `key`.
    public let entries: [String: Entry]
    /// The bytes of every artifact an entry names, by hash.
    public let artifacts: [String: Data]

    /// The template of the finished sweep in `runDirectory`.
    public init(runDirectory: URL) throws {
        let journal = try Journal(directory: runDirectory)
        let store = try ArtifactStore(runDirectory: runDirectory)
        var seconds: [String: Double] = [:]
        for attempt in try journal.attempts() {
            if let ended = attempt.ended { seconds[attempt.task] = ended - attempt.started }
        }
        var entries: [String: Entry] = [:], artifacts: [String: Data] = [:]
        for row in try journal.tasks() where row.state == .done {
            let spec = try JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8))
            let outputs = try JSONDecoder().decode([String: String].self, from: Data((row.outputs ?? "{}").utf8))
            for hash in outputs.values + (row.checkpoint.map { [$0] } ?? []) { artifacts[hash] = try store.data(hash) }
            entries[Self.key(spec)] = Entry(outputs: outputs, checkpoint: row.checkpoint, seconds: seconds[row.id] ?? 1)
        }
        guard !entries.isEmpty else {
            throw SweepError.invalid("the fleet template \(runDirectory.path) has no finished task; run a one-seed smoke sweep there first (scripts/fleet-sim template)")
        }
        self.entries = entries
        self.artifacts = artifacts
    }

    /// A task's shape: its summary with seed 0, so every seed's copy of a task maps to one entry.
    public static func key(_ spec: TaskSpec) -> String {
        var shape = spec
        shape.labels.seed = 0
        return shape.summary
    }
}
