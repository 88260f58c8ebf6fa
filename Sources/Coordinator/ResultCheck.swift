import Foundation
import Model
import Protocol
import TaskRuntime

/// The file side of taking a result, run on a `FileWork` lane: the outputs checked
/// (`TaskSpec.checkOutputs`), the worker's step time read, and, for a reported training,
/// its run summary read and its results.json line encoded, so the socket thread only takes
/// the verdict.
struct ResultCheck: Sendable {
    /// What the results line records of the attempt besides its outputs.
    struct Attempt: Sendable {
        /// The worker and its hello's host, GPU and build.
        var worker: String, host: String, gpu: String?, build: String?
        /// Seconds from dispatch to the result (nil: not dispatched by this coordinator; the
        /// worker's step time stands in).
        var wallSeconds: Double?
    }

    /// Why the outputs are refused (an error of the attempt), or nil.
    var failure: String?
    /// The results.json line of a reported training (JSON, sorted keys), "{}" otherwise.
    var record = "{}"
    /// The seconds the worker's step took (its own measure; 0 when it gave none).
    var stepSeconds = 0.0
    /// The kept weights of each mask the check counted, by hash (`ResultIntake` remembers
    /// them for the trainings that read those masks).
    var maskKept: [String: Int] = [:]

    /// The check of `result` of `task`, whose inputs are `inputs`, against `store`;
    /// `inputMaskKept` is the input mask's kept count when an earlier check counted it.
    init(_ task: TaskSpec, result: TaskResult, inputs: [String: String], attempt: Attempt, store: ArtifactStore, inputMaskKept: Int? = nil) {
        stepSeconds = (try? JSONDecoder().decode(StepTimes.self, from: Data(result.metrics.utf8)))?.stepSeconds ?? 0
        let checked: TaskSpec.CheckedOutputs
        do { checked = try task.checkOutputs(result.outputs, inputs: inputs, store: store, inputMaskKept: inputMaskKept) } catch {
            failure = "\(error)"
            return
        }
        maskKept = checked.maskKept
        // The check decoded a training's metrics already; reading them again was a tenth of the lanes' time.
        guard task.labels.reported, let summary = checked.summary else { return }
        var line = SweepOutputs.record(for: task, summary: summary, wallSeconds: attempt.wallSeconds ?? stepSeconds, worker: attempt.worker,
                                       host: attempt.host, codeVersion: CodeVersion.current)
        line.gpu = attempt.gpu
        line.stamp(build: attempt.build)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do { record = String(decoding: try encoder.encode(line), as: UTF8.self) } catch {
            failure = "the results line of \(task.summary) does not encode as JSON (a metric that is not a finite number?): \(error)"
        }
    }
}
