import Foundation
import Model
import TaskRuntime
import Testing

/// A worker's step runner resuming trainings from the checkpoints of earlier attempts.
@Suite struct StepRunnerTests {
    /// The coordinator can die after a training's last epoch was checkpointed but before its
    /// result arrived; the next attempt starts from that checkpoint with nothing left to train.
    @Test(.timeLimit(.minutes(10)))
    func aTrainingResumedFromItsLastEpochReturnsTheUninterruptedResult() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("step-runner-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ArtifactStore(runDirectory: directory)
        let config = TrainingConfig(dataset: .synthetic, width: 4, epochs: 2, batchSize: 32, learningRate: 0.05, schedule: .cosine,
                                    validationSize: 64, synthetic: .init(trainCount: 128, testCount: 64, side: 16))
        let labels = TaskSpec.Labels(method: "dense", options: "", seed: config.seed, round: 0, targetDensity: nil, reported: true)
        let initialise = TaskSpec(step: .initialise(ResNet18.Architecture(width: 4), seed: config.seed), inputs: [:], labels: labels)
        let train = TaskSpec(step: .train(config), inputs: ["initial": initialise.id], labels: labels)

        let first = StepRunner(store: store, scratch: directory.appendingPathComponent("first"))
        let theta0 = try #require(try first.run(initialise, inputs: [:]).artifacts["weights"])
        var checkpoints: [String] = []
        let whole = try first.run(train, inputs: ["initial": theta0], onEpoch: { _, hash in checkpoints.append(hash) })
        try #require(checkpoints.count == 2)

        // Another worker, a fresh scratch directory: only the store's artifacts carry over.
        let next = StepRunner(store: store, scratch: directory.appendingPathComponent("next"))
        var epochsRun = 0
        let resumed = try next.run(train, inputs: ["initial": theta0], checkpoint: checkpoints[1], onEpoch: { _, _ in epochsRun += 1 })
        #expect(epochsRun == 0)
        #expect(resumed.artifacts["weights"] == whole.artifacts["weights"])
        let summary = try #require(resumed.summary), reference = try #require(whole.summary)
        #expect(summary.history.map(\.testAccuracy) == reference.history.map(\.testAccuracy))
        #expect(summary.bestEpoch == reference.bestEpoch && summary.bestEpoch != nil)
        #expect(summary.bestValidationTestAccuracy == reference.bestValidationTestAccuracy && summary.bestValidationTestAccuracy != nil)
    }
}
