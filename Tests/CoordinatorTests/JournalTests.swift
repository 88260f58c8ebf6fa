import Foundation
import Testing
@testable import Coordinator

@Suite struct JournalTests {
    static let sweep = SweepSpec(name: "t", preset: "smoke", seeds: [1], synflowIterations: [10], synflowDensities: [0.1, 0.05])

    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func lifecycleSurvivesReopening() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let plan = try SweepPlan(Self.sweep)
        var journal = try Journal(directory: directory)
        #expect(try journal.record(sweep: Self.sweep, plan: plan, extend: false) == plan.tasks.count)
        // Only θ0 is runnable at first: everything else needs it.
        let first = try journal.runnable()
        #expect(first.map(\.id) == [plan.tasks[0].id])
        let attempt = try journal.start(first[0].id, worker: "w1")
        #expect(try journal.complete(first[0].id, attempt: attempt, outputs: ["weights": "h0"], record: #"{"x":1}"#))
        #expect(try !journal.complete(first[0].id, attempt: attempt, outputs: ["weights": "h0"], record: "{}"), "duplicate accepted")
        #expect(try journal.runnable().count == 2)

        // A task running when the coordinator dies is queued again on restart.
        let prune = try journal.runnable()[0].id
        _ = try journal.start(prune, worker: "w2")
        journal = try Journal(directory: directory)
        #expect(try journal.record(sweep: Self.sweep, plan: plan, extend: false) == 0)
        #expect(try journal.requeueInterrupted() == [prune])
        #expect(try journal.attemptCounts()[prune] == 1)
        #expect(try journal.attemptCounts()[first[0].id] == 1)
        #expect(try journal.eventCount("duplicate-result") == 1)
        #expect(try journal.results().count == 1)
    }

    @Test func lostWorkersDoNotCountAsFailures() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let plan = try SweepPlan(Self.sweep)
        let journal = try Journal(directory: directory)
        try journal.record(sweep: Self.sweep, plan: plan, extend: false)
        let task = plan.tasks[0].id
        for _ in 0..<5 {
            let attempt = try journal.start(task, worker: "w")
            try journal.abandon(task, attempt: attempt, lostWorker: true, message: "heartbeats stopped", retryLimit: 2)
        }
        #expect(try journal.tasks()[0].state == .queued && journal.tasks()[0].failures == 0)
        for _ in 0..<3 {
            let attempt = try journal.start(task, worker: "w")
            try journal.abandon(task, attempt: attempt, lostWorker: false, message: "boom", retryLimit: 2)
        }
        #expect(try journal.tasks()[0].state == .failed && journal.tasks()[0].failures == 3)
    }

    @Test func changedSweepIsRefusedUnlessExtended() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let journal = try Journal(directory: directory)
        try journal.record(sweep: Self.sweep, plan: try SweepPlan(Self.sweep), extend: false)
        var bigger = Self.sweep
        bigger.seeds = [1, 2]
        #expect { try journal.record(sweep: bigger, plan: try SweepPlan(bigger), extend: false) } throws: { "\($0)".contains("--extend") }
        let added = try journal.record(sweep: bigger, plan: try SweepPlan(bigger), extend: true)
        #expect(added == 5, "seed 2 adds θ0 and two prune + train pairs")
    }
}
