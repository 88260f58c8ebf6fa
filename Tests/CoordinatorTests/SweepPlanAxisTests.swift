import Foundation
import GRDB
import Testing
@testable import Coordinator
@testable import Model
import TaskRuntime

/// Planning sweeps of experiments: hand-counted task counts, sharing, late rewinding, and the
/// task ids of the built-ins as the first planner computed them.
@Suite struct SweepPlanAxisTests {
    static func example(_ name: String) throws -> SweepPlan {
        try SweepPlan(try SweepSpec.load(SweepFormatTests.root.appendingPathComponent("sweeps/\(name).json")))
    }

    static func trainings(_ plan: SweepPlan) -> [TaskSpec] { plan.tasks.filter { if case .train = $0.step { true } else { false } } }

    @Test func examplesPlanTheHandCountedTasks() throws {
        // Per seed: θ0, the dense run, θ1 and θ2; round 1's prune (of the dense weights, the same for
        // every rewind point); rounds 2–5's prunes and rounds 1–5's trainings per rewind point.
        let late = try Self.example("late-rewinding")
        #expect(late.tasks.count == 3 * (4 + 1 + 3 * 4 + 3 * 5))
        #expect(Self.trainings(late).count == 3 * (1 + 2 + 15))
        #expect(late.tasks.filter(\.labels.reported).count == 3 * 16)
        // Per seed: θ0, dense, then schedule 2 × scope 2 × iterations 3 × density 2 points of a prune and a training.
        let schedule = try Self.example("synflow-schedule")
        #expect(schedule.tasks.count == 3 * (2 + 24 * 2))
        #expect(Self.trainings(schedule).count == 3 * 25)
        // Per seed: one θ0 (the learning rate does not change the network drawn), and per learning
        // rate a dense run and 3 densities × 2 methods of a prune and a training.
        let lr = try Self.example("lr-density")
        #expect(lr.tasks.count == 3 * (1 + 4 * (1 + 6 * 2)))
        #expect(Self.trainings(lr).count == 3 * 4 * 7)
        let dense = lr.tasks.filter { $0.labels.method == "dense" }
        #expect(Set(dense.map { $0.labels.axes["learningRate"] }).count == 4)
        #expect(dense.allSatisfy { $0.labels.axes.keys.sorted() == ["learningRate"] })
    }

    @Test func theDenseRunIsSharedWhereTheRecipeIsEqualOnly() throws {
        let spec = SweepSpec(name: "share", preset: "smoke", seeds: [1, 2], grid: ["learningRate": [.number(0.05), .number(0.1)]], experiments: [
            .init(method: "dense"),
            .init(method: "lottery-ticket", options: ["rounds": .number(1)]),
            .init(method: "han", options: ["iterations": .number(1)]),
            .init(method: "lottery-ticket", options: ["rounds": .number(1)], overrides: try SweepSpec.Overrides().setting(["epochs=3"])),
        ])
        let plan = try SweepPlan(spec)
        let dense = plan.tasks.filter { $0.labels.method == "dense" }
        // Per seed and learning rate: one dense run for dense, Lottery Ticket and Han, one more for 3 epochs.
        #expect(dense.count == 2 * 2 * 2)
        for task in dense where { if case .train(let config) = task.step { config.epochs == 2 } else { false } }() {
            #expect(plan.uses[task.id] == 3, "dense, Lottery Ticket and Han use one dense run")
        }
        #expect(plan.tasks.filter { $0.labels.method == "init" }.count == 2, "one θ0 per seed across learning rates and recipes")
    }

    @Test func lateRewindingStartsEachRoundFromThetaK() throws {
        let spec = SweepSpec(name: "late", preset: "smoke", seeds: [7], overrides: try SweepSpec.Overrides().setting(["epochs=3"]), experiments: [
            .init(method: "lottery-ticket", options: ["rounds": .number(2)], grid: ["rewindEpoch": [.number(0), .number(1)]]),
        ])
        let plan = try SweepPlan(spec)
        let theta0 = try #require(plan.tasks.first { $0.labels.method == "init" })
        let dense = try #require(plan.tasks.first { $0.labels.method == "dense" && $0.labels.reported })
        let thetaK = try #require(plan.tasks.first { $0.labels.method == "dense" && !$0.labels.reported })
        guard case .train(let prefix) = thetaK.step, case .train(let recipe) = dense.step else { Issue.record("not trainings"); return }
        #expect(prefix.stopEpoch == 1 && prefix.startEpoch == 0 && thetaK.inputs == ["initial": theta0.id])
        var same = prefix
        same.stopEpoch = nil
        #expect(same == recipe, "θK is the dense recipe's first epoch")
        #expect(thetaK.labels.axes == ["rewindEpoch": .number(1)])
        // The dense run is the one a sweep without rewinding plans: saving θK does not change its id.
        let plain = try SweepPlan(SweepSpec(name: "plain", preset: "smoke", seeds: [7], overrides: spec.overrides,
                                            experiments: [.init(method: "dense")]))
        #expect(plain.tasks.contains { $0.id == dense.id })
        #expect(dense.labels.axes.isEmpty)
        for task in plan.tasks where task.labels.method == "lottery-ticket" && task.labels.reported {
            guard case .train(let config) = task.step else { continue }
            let rewind = Int(task.labels.axes["rewindEpoch"]?.number ?? -1)
            #expect(config.startEpoch == rewind)
            #expect(task.inputs["initial"] == (rewind == 0 ? theta0.id : thetaK.id))
            #expect(task.labels.options == (rewind == 0 ? "layerwise" : "layerwise rewind=1"))
        }
        // Round 1 prunes the dense run's final weights for both rewind points: one task.
        let firstPrunes = plan.tasks.filter { $0.labels.method == "lottery-ticket" && !$0.labels.reported && $0.labels.round == 1 }
        #expect(firstPrunes.count == 1 && plan.uses[firstPrunes[0].id] == 2)
        // An extended sweep (one more rewind point) plans only new tasks beside the old ones.
        var extended = spec
        extended.experiments[0].grid["rewindEpoch"]?.append(.number(2))
        let more = try SweepPlan(extended)
        #expect(Set(plan.tasks.map(\.id)).isSubset(of: Set(more.tasks.map(\.id))))
        #expect(more.tasks.count - plan.tasks.count == 1 + 1 + 2, "θ2, round 2's prune, two round trainings")
    }

    @Test func builtInsPlanTheTaskIdsOfTheFirstPlanner() throws {
        struct Row: Codable { var id: String; var summary: String; var reported: Bool }
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/builtin-task-ids.json")
        let fixture = try JSONDecoder().decode([String: [Row]].self, from: Data(contentsOf: url))
        #expect(fixture.count == 6)
        for (key, rows) in fixture {
            let parts = key.split(separator: "@").map(String.init)
            var spec = try #require(SweepSpec.builtIn[parts[0]])
            if parts.count == 2 { spec.preset = parts[1] }
            var file = try SweepSpec.load(SweepFormatTests.root.appendingPathComponent("sweeps/\(parts[0]).json"))
            file.preset = spec.preset
            for plan in [try SweepPlan(spec), try SweepPlan(file)] {
                let planned = Dictionary(uniqueKeysWithValues: plan.tasks.map { ($0.id, $0) })
                #expect(planned.count == rows.count, "\(key)")
                for row in rows {
                    let task = planned[row.id]
                    #expect(task?.summary == row.summary && task?.labels.reported == row.reported, "\(key): \(row.summary)")
                }
            }
        }
    }

    @Test func aRunDirectoryOfTheFirstFormatNeedsNoExtend() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("first-format-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let old = #"{"baselineDensities":[],"baselines":[],"dense":true,"hanIterations":0,"lotteryRounds":0,"name":"synflow-iters","overrides":{},"preset":"smoke","seeds":[42,43,44],"synflowDensities":[0.1,0.05,0.01],"synflowIterations":[1,10,20,100]}"#
        let journal = try Journal(directory: directory)
        let legacy = try JSONDecoder().decode(SweepSpec.self, from: Data(old.utf8))
        #expect(try journal.record(sweep: legacy, plan: try SweepPlan(legacy), extend: false) == 78)
        // The journal as the first format's coordinator wrote it: its spec in that form.
        try journal.database.write { db in try db.execute(sql: "UPDATE sweep SET spec = ? WHERE id = 1", arguments: [old]) }
        var builtIn = try #require(SweepSpec.builtIn["synflow-iters"])
        builtIn.preset = "smoke"
        #expect(try journal.record(sweep: builtIn, plan: try SweepPlan(builtIn), extend: false) == 0)
        #expect(try journal.sweep() == builtIn)
        // A sweep that plans other tasks is still refused without --extend.
        builtIn.seeds.append(45)
        #expect(throws: SweepError.self) { try journal.record(sweep: builtIn, plan: try SweepPlan(builtIn), extend: false) }
    }

    @Test func planSummaryCountsSharingAndCompute() throws {
        let plan = try Self.example("late-rewinding")
        let spec = try SweepSpec.load(SweepFormatTests.root.appendingPathComponent("sweeps/late-rewinding.json"))
        let key = TrainingWorkload(try SweepSpec.Overrides().setting(["epochs=4"]).applied(to: .quick, context: "t").training).key
        let summary = PlanSummary(sweep: spec, plan: plan, speeds: [.init(device: "cpu", source: "test", byWorkload: [key: 600])])
        #expect(summary.trainings == 54 && summary.byKind == ["init": 3, "train": 54, "prune": 39])
        // θ0, the dense run and round 1's prune serve all three rewind points of a seed.
        #expect(summary.sharedTasks == 3 * 3 && summary.sharedTrainings == 3)
        #expect(summary.trainingsWithoutSharing == summary.trainings + 3 * 2)
        // Epochs: dense 4, θ1 1, θ2 2, rounds 5 × (4 + 3 + 2), per seed.
        #expect(summary.epochs == 3 * (4 + 1 + 2 + 5 * 9))
        #expect(summary.estimates.count == 1 && summary.estimates[0].covered == 54)
        #expect(abs(summary.estimates[0].seconds - Double(summary.epochs) * 6000 / 600) < 1e-6)
    }
}
