import Foundation
import Protocol
import TaskRuntime

/// What the coordinator spends per result on its file lanes, measured on a finished run:
/// every done task's outputs checked again as a result of them would be (`ResultCheck`:
/// read and hash-checked, weights and masks checked against the architecture's layout,
/// metrics and reports decoded, the results line encoded; a mask that an earlier check
/// counted is not read again, as `ResultIntake` remembers it). `coordinator check-cost`
/// prints it.
public enum OutputCheckTiming {
    /// One task's check: its summary and step, the seconds of each repeat, and the check's
    /// refusal (nil: it passed, as it did when the task was accepted).
    public struct Sample: Sendable {
        public var summary: String, step: String
        public var seconds: [Double]
        public var failure: String?
    }

    /// Checks every done task of the run in `runDirectory` `repeats` times.
    public static func measure(runDirectory: URL, repeats: Int) throws -> [Sample] {
        let journal = try Journal(directory: runDirectory)
        let store = try ArtifactStore(runDirectory: runDirectory)
        let rows = try journal.tasks()
        let outputs = Dictionary(uniqueKeysWithValues: rows.map { ($0.id, $0.outputs) })
        var samples: [Sample] = [], maskCounts = MaskCounts()
        // In plan order, so a prune is checked before the trainings that read its mask.
        for row in rows where row.state == .done {
            let spec = try JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8))
            let produced = try JSONDecoder().decode([String: String].self, from: Data((row.outputs ?? "{}").utf8))
            let inputs = Journal.inputArtifacts(of: row, spec: spec) { outputs[$0] ?? nil }
            let result = TaskResult(taskID: row.id, attempt: 1, outputs: produced, metrics: "{}")
            let attempt = ResultCheck.Attempt(worker: "timing", host: "timing", gpu: nil, build: nil, wallSeconds: 1)
            let architecture = spec.step.architecture
            let known = inputs["mask"].flatMap { maskCounts.kept($0, for: architecture) }
            var seconds: [Double] = [], verdict: ResultCheck?
            for _ in 0..<max(1, repeats) {
                let start = DispatchTime.now().uptimeNanoseconds
                verdict = ResultCheck(spec, result: result, inputs: inputs, attempt: attempt, store: store, inputMaskKept: known)
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            if let verdict { maskCounts.remember(verdict, for: architecture) }
            let failure = verdict?.failure
            let step = switch spec.step { case .initialise: "init" case .train: "train" case .prune: "prune" }
            samples.append(Sample(summary: spec.summary, step: step, seconds: seconds, failure: failure))
        }
        return samples
    }
}
