import Foundation
import Protocol
import Testing
@testable import Coordinator

/// The progress watchdog against a peer that heartbeats but never reports progress (a wedged
/// GPU or task thread, as the coordinator sees it): its task is taken back, it is told to
/// cancel, and after repeated stalls it is quarantined; the sweep finishes elsewhere.
@Suite struct StalledPeerTests {
    @Test(.timeLimit(.minutes(10)))
    func aStalledPeerLosesItsTaskWhichFinishesElsewhere() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = #"{"name":"stall","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":1}}"#
        // 8 s: longer than any smoke step of the honest worker takes between two progress reports.
        let (coordinator, log, endpoint) = try HostilePeerTests.start(harness, sweep: sweep, fields: #""stallSeconds": 8, "quarantineAfter": 2, "#)
        defer { StartedProcesses.stop(coordinator) }

        let sleeper = try HandWrittenPeer(endpoint: endpoint, name: "sleeper")
        var taken: String?
        var answers: [[Message]] = []
        for attempt in 1...2 {
            try sleeper.send(.ready(Ready(credit: 1)))
            let task = try #require(sleeper.nextTask(seconds: 10), "no task came for attempt \(attempt)")
            #expect(task.attempt == attempt && (taken == nil || taken == task.taskID))
            taken = task.taskID
            // It only answers heartbeats: alive, never progressing.
            answers.append(sleeper.collect(seconds: 12))
        }
        let task = try #require(taken)
        for (index, messages) in answers.enumerated() {
            #expect(messages.contains { if case .cancel(let cancel) = $0 { cancel.taskID == task && cancel.reason.contains("stall limit") } else { false } },
                    "stall \(index + 1) was not answered with cancel: \(messages)")
        }
        #expect(answers[1].contains { if case .shutdown(let shutdown) = $0 { shutdown.reason.contains("quarantined after 2") } else { false } },
                "the peer was not quarantined after two stalls: \(answers[1])")
        sleeper.close()
        let text = try HostilePeerTests.finish(harness, coordinator, log: log, endpoint: endpoint)
        #expect(text.contains("no progress on the task for"), "\(text)")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.attemptWorkers(task) == ["sleeper", "sleeper", "honest"])
        #expect(try journal.eventCount("stalled") == 2)
        #expect(try journal.eventCount("quarantine") == 1)
        #expect(try journal.task(task)?.failures == 0, "a stall counted as a failure of the task")
        try HostilePeerTests.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }
}
