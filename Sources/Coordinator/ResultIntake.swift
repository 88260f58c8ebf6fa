import Foundation
import Protocol
import TaskRuntime

/// Result intake: each result's outputs checked (`ResultCheck`) on the `FileWork` lane of
/// the worker that sent it, after that worker's uploads, and the verdicts handed back to the
/// socket thread, where `SweepServer+Results` accepts a result once or fails its attempt.
/// Results being checked are bounded by the workers' slots: only a task's holder reports it,
/// and a worker's delivered results free at most its slots (`Scheduler.capacity`).
final class ResultIntake: @unchecked Sendable {
    private let store: ArtifactStore
    private let files: FileWork
    /// Results whose check has not come back yet.
    private(set) var checking = 0
    /// The masks passed checks counted (a prune's output mask, read again by its trainings).
    private var maskCounts = MaskCounts()

    /// Intake checking against `store` on `files`.
    init(store: ArtifactStore, files: FileWork) {
        self.store = store
        self.files = files
    }

    /// Checks `result` of `task` (whose inputs are `inputs`) from `attempt.worker`; `then`
    /// gets the verdict on the socket thread.
    func check(_ result: TaskResult, of task: TaskSpec, inputs: [String: String], attempt: ResultCheck.Attempt,
               then: @escaping @Sendable (ResultCheck) -> Void) {
        checking += 1
        let store = self.store, architecture = task.step.architecture
        let known = inputs["mask"].flatMap { maskCounts.kept($0, for: architecture) }
        files.run(after: attempt.worker, { ResultCheck(task, result: result, inputs: inputs, attempt: attempt, store: store, inputMaskKept: known) }) { [self] verdict in
            checking -= 1
            maskCounts.remember(verdict, for: architecture)
            then(verdict)
        }
    }
}
