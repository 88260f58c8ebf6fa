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

    /// The check of `result` of `task`, whose inputs are `inputs`, against `store`.
    init(_ task: TaskSpec, result: TaskResult, inputs: [String: String], attempt: Attempt, store: ArtifactStore) {
        stepSeconds = (try? JSONDecoder().decode(StepTimes.self, from: Data(result.metrics.utf8)))?.stepSeconds ?? 0
        do { try task.checkOutputs(result.outputs, inputs: inputs, store: store) } catch {
            failure = "\(error)"
            return
        }
        guard task.labels.reported, let metrics = result.outputs["metrics"] else { return }
        let summary: RunSummary
        do { summary = try JSONDecoder().decode(RunSummary.self, from: try store.data(metrics)) } catch {
            failure = "the metrics output of \(task.summary) does not decode as a run summary: \(error)"
            return
        }
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
