import BuildStamp
import Foundation
import TaskRuntime

/// Runs a sweep's tasks one after another in this process, through the same journal,
/// artifact store and step runner the distributed coordinator uses. Rerunning it on the
/// same run directory continues where it stopped: done tasks are never redone.
public struct LocalExecutor {
    /// The sweep.
    public let sweep: SweepSpec
    /// Its run directory.
    public let runDirectory: URL
    /// The dataset's directory (nil: the dataset's default).
    public let dataDirectory: URL?

    /// An executor of `sweep` in `runDirectory`, reading the dataset from `dataDirectory`.
    public init(sweep: SweepSpec, runDirectory: URL, dataDirectory: URL? = nil) {
        self.sweep = sweep
        self.runDirectory = runDirectory
        self.dataDirectory = dataDirectory
    }

    /// Runs every runnable task until none is left and writes the outputs; returns the report.
    public func run(extend: Bool = false, retryLimit: Int = 2, log: @escaping (String) -> Void = { _ in }) throws -> URL {
        let journal = try Journal(directory: runDirectory)
        try journal.record(sweep: sweep, plan: try SweepPlan(sweep), extend: extend)
        try journal.requeueInterrupted()
        let store = try ArtifactStore(runDirectory: runDirectory)
        let runner = StepRunner(store: store, scratch: runDirectory.appendingPathComponent("scratch"), dataDirectory: dataDirectory)
        let host = ProcessInfo.processInfo.hostName
        while let row = try journal.runnable().first {
            let task = try JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8))
            var inputs = try journal.inputArtifacts(of: row, spec: task)
            inputs["checkpoint"] = nil
            let attempt = try journal.start(row.id, worker: "local")
            let start = Date()
            do {
                let output = try runner.run(task, inputs: inputs, checkpoint: row.checkpoint,
                                            onEpoch: { _, checkpoint in try? journal.checkpoint(row.id, artifact: checkpoint) }, log: log)
                try task.checkOutputs(output.artifacts, inputs: inputs, store: store)
                var record = "{}"
                if let summary = output.summary, task.labels.reported {
                    var result = SweepOutputs.record(for: task, summary: summary, wallSeconds: Date().timeIntervalSince(start),
                                                     worker: "local", host: host, codeVersion: CodeVersion.current)
                    result.stamp(build: BuildInfo.current.identifier)
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    record = String(decoding: try encoder.encode(result), as: UTF8.self)
                }
                _ = try journal.complete(row.id, attempt: attempt, outputs: output.artifacts, record: record)
                // The report follows the results, so a long sweep can be read while it runs.
                if task.labels.reported {
                    do { try SweepOutputs.write(journal: journal, sweep: sweep, runDirectory: runDirectory) } catch {
                        log("cannot rewrite the report in \(runDirectory.path) (the sweep goes on; it is written again at the end): \(error)")
                    }
                }
                log("done \(task.summary)")
            } catch {
                try journal.abandon(row.id, attempt: attempt, lostWorker: false, message: "\(error)", retryLimit: retryLimit)
                log("failed \(task.summary) (\(row.id.prefix(12))): \(error)")
            }
        }
        return try SweepOutputs.write(journal: journal, sweep: sweep, runDirectory: runDirectory)
    }
}
