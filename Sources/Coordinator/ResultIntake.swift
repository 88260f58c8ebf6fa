import Foundation
import Model
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
    /// A mask's kept weights, by hash and the architecture it was checked for, from every
    /// passed check that counted it (a prune's output): a training that reads the mask is
    /// checked against the count instead of reading, hashing and counting the mask again.
    /// The hash names the bytes, so the count stays true; one entry per mask of the sweep.
    private var maskKept: [MaskKey: Int] = [:]

    private struct MaskKey: Hashable {
        var hash: String, architecture: ResNet18.Architecture
    }

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
        let known = inputs["mask"].flatMap { maskKept[MaskKey(hash: $0, architecture: architecture)] }
        files.run(after: attempt.worker, { ResultCheck(task, result: result, inputs: inputs, attempt: attempt, store: store, inputMaskKept: known) }) { [self] verdict in
            checking -= 1
            if verdict.failure == nil {
                for (hash, kept) in verdict.maskKept { maskKept[MaskKey(hash: hash, architecture: architecture)] = kept }
            }
            then(verdict)
        }
    }
}
