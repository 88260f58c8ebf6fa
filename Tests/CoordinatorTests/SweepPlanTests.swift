import Foundation
import Testing
@testable import Coordinator
@testable import Model

@Suite struct SweepPlanTests {
    @Test func synflowItersPlansEveryTaskOnce() throws {
        let plan = try SweepPlan(SweepSpec.builtIn["synflow-iters"]!)
        // Per seed: θ0, the dense reference, then 4 iteration counts × 3 densities of prune + train.
        #expect(plan.tasks.count == 3 * (1 + 1 + 2 * 12))
        #expect(Set(plan.tasks.map(\.id)).count == plan.tasks.count)
        #expect(plan.tasks.filter(\.labels.reported).count == 39)
        // Inputs come before the tasks that consume them.
        var seen = Set<String>()
        for task in plan.tasks {
            #expect(task.inputs.values.allSatisfy(seen.contains), "\(task.labels.method) depends on a later task")
            seen.insert(task.id)
        }
    }

    @Test func seedsSweepSharesTheDenseRun() throws {
        let plan = try SweepPlan(SweepSpec.builtIn["seeds"]!)
        let perSeed = 1 + 1 + 2 * 9 + (1 + 2 * 6)
        #expect(plan.tasks.count == 3 * perSeed)
        let dense = plan.tasks.filter { $0.labels.method == "dense" }
        #expect(dense.count == 3)
        // LTH round 1's prune and Han's first fine-tune both consume the dense run of their seed.
        for task in dense {
            let consumers = plan.tasks.filter { $0.inputs.values.contains(task.id) }
            #expect(Set(consumers.map(\.labels.method)) == ["lottery-ticket", "han"])
        }
    }

    @Test func sweepsOnOnePresetShareTheDenseReference() throws {
        let dense = { (name: String) throws -> Set<String> in
            Set(try SweepPlan(SweepSpec.builtIn[name]!).tasks.filter { $0.labels.method == "dense" }.map(\.id))
        }
        let synflow = try dense("synflow-iters"), baselines = try dense("baselines")
        #expect(synflow.count == 3)
        #expect(synflow == baselines, "the quick preset's dense run of a seed must be one task in both sweeps")
    }

    @Test func taskIdentityIsContentAddressed() throws {
        let a = try SweepPlan(SweepSpec(name: "a", preset: "smoke", seeds: [1], synflowIterations: [10], synflowDensities: [0.1]))
        let b = try SweepPlan(SweepSpec(name: "b", preset: "smoke", seeds: [1, 2], synflowIterations: [10], synflowDensities: [0.1]))
        #expect(Set(a.tasks.map(\.id)).isSubset(of: Set(b.tasks.map(\.id))))
    }

    @Test func invalidSweepsNameTheField() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func load(_ json: String) throws -> SweepSpec {
            let url = directory.appendingPathComponent("s.json")
            try Data(json.utf8).write(to: url)
            return try SweepSpec.load(url)
        }
        #expect { try load(#"{"name":"x","preset":"quick"}"#) } throws: { "\($0)".contains("seeds") }
        #expect { try load(#"{"name":"x","preset":"quick","seeds":[1],"synflowIteration":[1]}"#) } throws: { "\($0)".contains("synflowIteration") }
        #expect { try load(#"{"name":"x","preset":"quick","seeds":"42"}"#) } throws: { "\($0)".contains("seeds") }
        #expect { try load(#"{"name":"x","preset":"quick","seeds":[1],"synflowIterations":[10],"synflowDensities":[95]}"#) } throws: { "\($0)".contains("95") }
        #expect { try load(#"{"name":"x","preset":"huge","seeds":[1],"experiments":[{"method":"dense"}]}"#) } throws: { "\($0)".contains("huge") }
        var zeroEpochs = try load(#"{"name":"x","preset":"smoke","seeds":[1],"experiments":[{"method":"dense"}]}"#)
        zeroEpochs.overrides.epochs = 0
        #expect { try zeroEpochs.resolvedPreset() } throws: { "\($0)".contains("epochs") }
    }
}
