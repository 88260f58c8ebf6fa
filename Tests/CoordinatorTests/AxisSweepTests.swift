import Foundation
import Testing
@testable import Coordinator
import TaskRuntime

/// A sweep of axes as it runs for users: a coordinator process and its worker processes on the
/// smoke preset, then the same sweep with one more axis value.
@Suite struct AxisSweepTests {
    static func sweep(learningRates: String) -> String {
        #"{"name":"axes","preset":"smoke","seeds":[1,2,3],"set":{"epochs":1},"grid":{"learningRate":\#(learningRates)},"experiments":[{"method":"dense"},{"method":"synflow","density":0.2,"grid":{"iterations":[1,10],"scope":["global","layerwise"]}}]}"#
    }

    @Test(.timeLimit(.minutes(10)))
    func aSweepWideAxisAndTwoMethodAxesRunAndExtendByTheNewPointsOnly() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = try harness.file("sweep.json", Self.sweep(learningRates: "[0.05,0.1]"))
        let cluster = try harness.cluster(workers: 2).path
        let first = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster, "--no-dashboard"])
        #expect(first.status == 0, "\(first.output)\(first.errors)")

        // One group per axis point, each with the three seeds: per learning rate the dense run and
        // iterations 2 × scope 2 SynFlow points.
        let aggregate = try JSONSerialization.jsonObject(with: Data(contentsOf: harness.run.appendingPathComponent("aggregate.json"))) as! [[String: Any]]
        #expect(aggregate.count == 2 * (1 + 4))
        for row in aggregate {
            let axes = row["axes"] as? [String: Any] ?? [:]
            #expect((row["accuracy"] as? [String: Any])?["n"] as? Int == 3, "\(row)")
            #expect(axes["learningRate"] as? Double != nil)
            if row["method"] as? String == "synflow" {
                #expect(Set(axes.keys) == ["learningRate", "iterations", "scope"], "\(axes)")
            } else {
                #expect(Set(axes.keys) == ["learningRate"], "\(axes)")
            }
        }
        let results = try JSONSerialization.jsonObject(with: Data(contentsOf: harness.run.appendingPathComponent("results.json"))) as! [[String: Any]]
        #expect(results.count == 3 * 2 * 5)
        #expect(results.allSatisfy { ($0["axes"] as? [String: Any])?["learningRate"] != nil })
        let report = try String(contentsOf: harness.run.appendingPathComponent("report.md"), encoding: .utf8)
        #expect(report.contains("| learningRate |") || report.contains("learningRate |"))

        // One more learning rate: only its points train.
        let journal = try Journal(directory: harness.run)
        let before = Dictionary(uniqueKeysWithValues: try journal.tasks().map { ($0.id, try journal.attemptRecords($0.id).count) })
        try Data(Self.sweep(learningRates: "[0.05,0.1,0.02]").utf8).write(to: sweep)
        let refused = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster, "--no-dashboard"])
        #expect(refused.status != 0 && refused.errors.contains("--extend"))
        let second = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster, "--no-dashboard", "--extend"])
        #expect(second.status == 0, "\(second.output)\(second.errors)")
        let after = try journal.tasks()
        #expect(after.allSatisfy { $0.state == .done })
        let new = after.filter { before[$0.id] == nil }
        // Per seed: the new rate's dense run and four SynFlow points (prune and training each); θ0 is shared.
        #expect(new.count == 3 * (1 + 4 * 2))
        for task in after where before[task.id] != nil {
            #expect(try journal.attemptRecords(task.id).count == before[task.id], "an old task ran again")
        }
        let extended = try JSONSerialization.jsonObject(with: Data(contentsOf: harness.run.appendingPathComponent("aggregate.json"))) as! [[String: Any]]
        #expect(extended.count == 3 * 5)
    }
}
