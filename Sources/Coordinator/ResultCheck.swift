import Foundation
import Model
import TaskRuntime

/// The file side of taking a result, run on the `FileWork` thread: the outputs checked
/// (`TaskSpec.checkOutputs`) and, for a reported training, its run summary read for the
/// results table.
struct ResultCheck: Sendable {
    /// Why the outputs are refused (an error of the attempt), or nil.
    var failure: String?
    /// The run summary of a reported training.
    var summary: RunSummary?

    /// The check of `outputs` of `task`, whose inputs are `inputs`, against `store`.
    init(_ task: TaskSpec, outputs: [String: String], inputs: [String: String], store: ArtifactStore) {
        do { try task.checkOutputs(outputs, inputs: inputs, store: store) } catch {
            failure = "\(error)"
            return
        }
        guard task.labels.reported, let metrics = outputs["metrics"] else { return }
        do { summary = try JSONDecoder().decode(RunSummary.self, from: try store.data(metrics)) } catch {
            failure = "the metrics output of \(task.summary) does not decode as a run summary: \(error)"
        }
    }
}
