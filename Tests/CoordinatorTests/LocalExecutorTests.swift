import Foundation
import Testing
@testable import Coordinator

/// A whole sweep on the smoke preset with the real steps, in process.
@Suite struct LocalExecutorTests {
    @Test(.timeLimit(.minutes(5)))
    func smokeSweepRunsEveryTaskOnceAndResumes() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sweep = SweepSpec(name: "smoke-test", preset: "smoke", seeds: [1, 2], dense: true, lotteryRounds: 1,
                              synflowIterations: [10], synflowDensities: [0.2])
        let report = try LocalExecutor(sweep: sweep, runDirectory: directory).run()
        let journal = try Journal(directory: directory)
        let plan = try SweepPlan(sweep)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        #expect(try journal.attemptCounts().values.allSatisfy { $0 == 1 })
        let records = try JSONDecoder().decode([ResultRecord].self, from: Data(contentsOf: directory.appendingPathComponent("results.json")))
        #expect(records.count == plan.tasks.filter(\.labels.reported).count)
        #expect(records.filter { $0.method == "synflow" }.allSatisfy { abs($0.density - 0.2) < 0.001 })
        #expect(records.filter { $0.method == "lottery-ticket" }.allSatisfy { abs($0.density - 0.8) < 0.001 })
        let aggregate = try JSONDecoder().decode([AggregateRow].self, from: Data(contentsOf: directory.appendingPathComponent("aggregate.json")))
        #expect(aggregate == AggregateRow.aggregate(records, seeds: [1, 2]))
        #expect(aggregate.allSatisfy { $0.accuracy.n == 2 && $0.missingSeeds.isEmpty })
        #expect(try String(contentsOf: report, encoding: .utf8).contains("| synflow | T=10 |"))

        // Rerun: nothing is redone.
        _ = try LocalExecutor(sweep: sweep, runDirectory: directory).run()
        #expect(try Journal(directory: directory).attemptCounts().values.allSatisfy { $0 == 1 })
    }
}
