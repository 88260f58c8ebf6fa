import Foundation
import Model
import Protocol
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

    /// A smoke sweep's θ0 and first prune's outputs, made by the real steps in a fresh store.
    private struct Pruned {
        let directory: URL, store: ArtifactStore, runner: StepRunner, plan: SweepPlan
        let prune: TaskSpec, theta0: [String: String], mask: [String: String]

        init(_ name: String) throws {
            directory = try JournalTests.directory()
            plan = try SweepPlan(SweepSpec(name: name, preset: "smoke", seeds: [1], baselines: ["random"], baselineDensities: [0.2]))
            store = try ArtifactStore(runDirectory: directory)
            runner = StepRunner(store: store, scratch: directory.appendingPathComponent("scratch"))
            let initialise = try #require(plan.tasks.first { if case .initialise = $0.step { true } else { false } })
            prune = try #require(plan.tasks.first { if case .prune = $0.step { true } else { false } })
            theta0 = try runner.run(initialise, inputs: [:]).artifacts
            mask = try runner.run(prune, inputs: ["weights": theta0["weights"]!]).artifacts
        }

        /// The training on the prune's mask, run: it reads θ0 under its role (the init's
        /// weights) and the prune's mask.
        func trainedOnMask() throws -> (train: TaskSpec, inputs: [String: String], trained: [String: String]) {
            let train = try #require(plan.tasks.first { $0.inputs["mask"] == prune.id })
            let inputs = train.inputs.mapValues { producer in producer == prune.id ? mask["mask"]! : theta0["weights"]! }
            return (train, inputs, try runner.run(train, inputs: inputs).artifacts)
        }
    }

    /// `MaskCount` counts and refuses masks as `MaskSet` does, from the file's bytes.
    @Test func maskCountsAreMaskSetsCountsAndRefusals() throws {
        let pruned = try Pruned("masks")
        defer { try? FileManager.default.removeItem(at: pruned.directory) }
        let (store, prune, mask) = (pruned.store, pruned.prune, pruned.mask)
        let layout = ResNet18.Layout(prune.step.architecture)
        let file = try Safetensors(data: try store.data(mask["mask"]!), source: "mask")
        let set = try MaskSet(from: file, layout: layout, source: "mask")
        let count = try MaskCount(file, layout: layout, source: "mask")
        #expect(count.kept == set.kept && count.total == set.total)
        #expect(count.kept > 0 && count.kept < count.total, "a random 20% mask keeps some weights, not all")
        #expect(count.density == set.density)

        func refusals(_ change: (inout MaskSet) -> Void) throws -> (count: String?, set: String?) {
            var changed = set
            change(&changed)
            let bytes = changed.safetensors().serialized()
            let file = try Safetensors(data: bytes, source: "mask")
            var refusals: (count: String?, set: String?) = (nil, nil)
            do { _ = try MaskCount(file, layout: layout, source: "mask") } catch { refusals.count = error.description }
            do { _ = try MaskSet(from: file, layout: layout, source: "mask") } catch { refusals.set = error.description }
            return refusals
        }
        let name = layout.prunable[3].name
        let half = try refusals { $0.values[name]![5] = 0.5 }
        #expect(half.count?.contains("mask \(name) holds 0.5; masks hold only 0 and 1") == true)
        #expect(half.count == half.set)
        let nan = try refusals { $0.values[name]![0] = .nan }
        #expect(nan.count != nil && nan.count == nan.set)
        let negativeZero = try refusals { $0.values[name]![0] = -0.0 }
        #expect(negativeZero.count == nil && negativeZero.set == nil)
        let missing = try refusals { $0.names.removeAll { $0 == name } }
        #expect(missing.count?.contains("has no mask for \(name)") == true)
        #expect(missing.count == missing.set)
        let reshaped = try refusals { $0.shapes[name] = [$0.values[name]!.count] }
        #expect(reshaped.count?.contains("mask \(name) has shape") == true)
        #expect(reshaped.count == reshaped.set)
    }

    /// A masked training is checked against its input mask's count when an earlier check
    /// counted it (the mask is then not read), and against the mask itself otherwise; a
    /// passed check hands back the training's summary and every mask it counted.
    @Test func aKnownInputMaskCountStandsInForTheMask() throws {
        let pruned = try Pruned("known")
        defer { try? FileManager.default.removeItem(at: pruned.directory) }
        let (store, prune, theta0, mask) = (pruned.store, pruned.prune, pruned.theta0, pruned.mask)
        let (train, inputs, trained) = try pruned.trainedOnMask()

        let checkedPrune = try prune.checkOutputs(mask, inputs: ["weights": theta0["weights"]!], store: store)
        let kept = try #require(checkedPrune.maskKept[mask["mask"]!])
        #expect(checkedPrune.summary == nil)
        let read = try train.checkOutputs(trained, inputs: inputs, store: store)
        #expect(read.maskKept == [mask["mask"]!: kept], "the input mask read and counted")
        #expect(read.summary?.remaining == kept)
        let known = try train.checkOutputs(trained, inputs: inputs, store: store, inputMaskKept: kept)
        #expect(known.maskKept.isEmpty, "the input mask read although its count was known")
        #expect(known.summary?.remaining == kept)
        // The count stands in for the mask: a wrong one refuses the metrics, and the mask is not read.
        do {
            try train.checkOutputs(trained, inputs: inputs, store: store, inputMaskKept: kept + 1)
            Issue.record("metrics that disagree with the known mask count passed")
        } catch { #expect("\(error)".contains("the task's mask keeps \(kept + 1)")) }
        let absent = inputs.merging(["mask": String(repeating: "0", count: 64)]) { $1 }
        #expect(throws: SweepError.self) { try train.checkOutputs(trained, inputs: absent, store: store) }
        try train.checkOutputs(trained, inputs: absent, store: store, inputMaskKept: kept)
    }

    /// Result intake remembers the count of every mask a passed check counted: a training
    /// that reads a mask a prune's check counted is checked without reading it again.
    @Test func intakeRemembersTheMasksItsChecksCounted() throws {
        let pruned = try Pruned("intake")
        defer { try? FileManager.default.removeItem(at: pruned.directory) }
        let (store, prune, theta0, mask) = (pruned.store, pruned.prune, pruned.theta0, pruned.mask)
        let (train, inputs, trained) = try pruned.trainedOnMask()
        let files = FileWork(wake: {})
        let attempt = ResultCheck.Attempt(worker: "w", host: "h", gpu: nil, build: nil, wallSeconds: 1)
        func verdict(_ intake: ResultIntake, _ task: TaskSpec, _ outputs: [String: String], _ inputs: [String: String]) -> String? {
            let failure = Locked<String??>(nil)
            intake.check(TaskResult(taskID: task.id, attempt: 1, outputs: outputs, metrics: "{}"), of: task, inputs: inputs, attempt: attempt) { verdict in
                failure.with { $0 = .some(verdict.failure) }
            }
            files.finish()
            return failure.with { $0 } ?? "no verdict"
        }
        let intake = ResultIntake(store: store, files: files)
        #expect(verdict(intake, prune, mask, ["weights": theta0["weights"]!]) == nil)
        try FileManager.default.removeItem(at: store.url(mask["mask"]!))
        #expect(verdict(intake, train, trained, inputs) == nil, "the training's check read the mask its prune's check counted")
        let fresh = verdict(ResultIntake(store: store, files: files), train, trained, inputs)
        #expect(fresh?.contains("did not arrive intact") == true, "an intake that counted no mask did not read it")
    }
}
