import Foundation
import Testing
@testable import Coordinator
@testable import Model
import TaskRuntime

/// Late rewinding as a sweep plans it and a worker's step runner runs it: the round trains from
/// the dense recipe's θK, starting where an uninterrupted run stands after epoch K.
@Suite struct PlannedRewindingTests {
    @Test(.timeLimit(.minutes(10)))
    func aRoundStartsFromThetaKWhereTheUninterruptedRunStands() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rewinding-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let spec = SweepSpec(name: "late", preset: "smoke", seeds: [3], overrides: try SweepSpec.Overrides().setting(["epochs=3"]), experiments: [
            .init(method: "lottery-ticket", options: ["rounds": .number(1), "rewindEpoch": .number(1)]),
        ])
        let plan = try SweepPlan(spec)
        let store = try ArtifactStore(runDirectory: directory)
        let runner = StepRunner(store: store, scratch: directory.appendingPathComponent("scratch"))
        var outputs: [String: [String: String]] = [:], checkpoints: [String: [String]] = [:]
        for task in plan.tasks {
            let inputs = task.inputs.mapValues { id in outputs[id]?["weights"] ?? outputs[id]?["mask"] ?? "" }
            outputs[task.id] = try runner.run(task, inputs: inputs, onEpoch: { _, hash in checkpoints[task.id, default: []].append(hash) }).artifacts
        }
        let theta0 = try #require(plan.tasks.first { $0.labels.method == "init" })
        let dense = try #require(plan.tasks.first { $0.labels.method == "dense" && $0.labels.reported })
        let thetaK = try #require(plan.tasks.first { $0.labels.method == "dense" && !$0.labels.reported })
        let round = try #require(plan.tasks.first { $0.labels.method == "lottery-ticket" && $0.labels.reported })
        guard case .train(let recipe) = dense.step else { Issue.record("the dense task is no training"); return }

        // The uninterrupted dense run, keeping θ1 and stopping after epoch 2 to read where it stands.
        let whole = directory.appendingPathComponent("whole")
        let data = try recipe.loadData()
        let initial = try Safetensors(contentsOf: store.url(try #require(outputs[theta0.id]?["weights"])))
        let uninterrupted = try Trainer(config: recipe, data: data, directory: whole, initialState: initial, snapshotEpochs: [1], log: { _ in })
        try uninterrupted.run(stopAfterEpoch: 2)

        // θK is the uninterrupted run's epoch 1, bit for bit.
        let planned = try Safetensors(contentsOf: store.url(try #require(outputs[thetaK.id]?["weights"])))
        let snapshot = try Safetensors(contentsOf: whole.appendingPathComponent("epoch-1.safetensors"))
        #expect(planned.names.sorted() == snapshot.names.sorted())
        for name in snapshot.names { #expect(try planned.tensor(name).array == snapshot.tensor(name).array, "\(name)") }

        // The round's first epoch is epoch 2 at the uninterrupted run's rate, on its data order.
        let metrics = try JSONDecoder().decode(RunSummary.self, from: store.data(try #require(outputs[round.id]?["metrics"])))
        #expect(metrics.history.map(\.epoch) == [2, 3])
        #expect(metrics.history[0].learningRate == uninterrupted.history[1].learningRate)
        let checkpoint = directory.appendingPathComponent("round-epoch-2.safetensors")
        try store.data(try #require(checkpoints[round.id]?.first)).write(to: checkpoint)
        let architecture = ResNet18.Architecture(width: recipe.width, inputChannels: 3, classes: 10)
        let branch = try Checkpoint.load(checkpoint, into: ResNet18(architecture))
        let reference = try Checkpoint.load(uninterrupted.checkpointURL, into: ResNet18(architecture))
        #expect(branch.completedEpochs == 2 && reference.completedEpochs == 2)
        #expect(branch.shuffleState == reference.shuffleState && branch.augmentationState == reference.augmentationState)
        #expect(branch.optimizerSteps == reference.optimizerSteps)
    }
}
