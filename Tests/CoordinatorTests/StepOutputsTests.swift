import Foundation
import TaskRuntime
import Testing
@testable import Coordinator

/// The rule a result's outputs must pass, on real θ0 files and masks of the smoke preset.
@Suite struct StepOutputsTests {
    @Test func onlyTheStepsOwnIntactLoadableOutputsOfTheRightDensityPass() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sweep = SweepSpec(name: "outputs", preset: "smoke", seeds: [1], baselines: ["random"], baselineDensities: [0.2, 0.1])
        let plan = try SweepPlan(sweep)
        let store = try ArtifactStore(runDirectory: directory)
        let runner = StepRunner(store: store, scratch: directory.appendingPathComponent("scratch"))
        let initialise = try #require(plan.tasks.first { if case .initialise = $0.step { true } else { false } })
        let prunes = plan.tasks.filter { if case .prune = $0.step { true } else { false } }
        try #require(prunes.count == 2)
        let theta0 = try runner.run(initialise, inputs: [:]).artifacts
        let masks = try prunes.map { try runner.run($0, inputs: ["weights": theta0["weights"]!]).artifacts }

        try initialise.checkOutputs(theta0, inputs: [:], store: store)
        try prunes[0].checkOutputs(masks[0], inputs: ["weights": theta0["weights"]!], store: store)
        func refusal(_ task: TaskSpec, _ outputs: [String: String]) -> String? {
            do { try task.checkOutputs(outputs, inputs: ["weights": theta0["weights"]!], store: store) } catch { return error.description }
            return nil
        }
        let junk = try store.put(Data("not a tensor file".utf8))
        #expect(refusal(initialise, ["weights": theta0["weights"]!, "metrics": junk])?.contains("have roles [\"metrics\", \"weights\"], the step produces [\"weights\"]") == true)
        #expect(refusal(initialise, ["initial": theta0["weights"]!])?.contains("the step produces [\"weights\"]") == true)
        #expect(refusal(initialise, ["weights": String(repeating: "0", count: 64)])?.contains("did not arrive intact") == true)
        #expect(refusal(initialise, ["weights": masks[0]["mask"]!])?.contains("not a valid weights") == true)
        #expect(refusal(prunes[0], ["mask": theta0["weights"]!, "report": masks[0]["report"]!])?.contains("masks hold only 0 and 1") == true)
        #expect(refusal(prunes[0], ["mask": masks[0]["mask"]!, "report": junk])?.contains("not a valid report") == true)
        #expect(refusal(prunes[0], ["mask": masks[0]["mask"]!, "report": masks[1]["report"]!])?.contains("its mask keeps") == true)
        #expect(refusal(prunes[0], masks[1])?.contains("the method aims at 0.2") == true)
    }
}
