import Foundation
import Testing
@testable import Coordinator

/// SIGTERM and SIGINT stop a coordinator, keep-serving or mid-sweep, with the workers it
/// started. A test's threads block both signals and a started process inherits the mask
/// (`StopSignals`): before the coordinator unblocked them, a keep-serving coordinator
/// started here ignored SIGTERM and outlived the test run.
@Suite struct StopSignalTests {
    @Test(.timeLimit(.minutes(10)))
    func sigtermEndsAKeepServingCoordinator() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = try harness.file("sweep.json", #"{"name":"term","preset":"smoke","seeds":[1],"baselines":["random"],"baselineDensities":[0.2]}"#)
        let output = harness.directory.appendingPathComponent("coordinator.out")
        let coordinator = try harness.start(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", try harness.cluster(workers: 1).path,
                                             "--dashboard", "127.0.0.1:0", "--keep-serving"], output: output)
        defer { StartedProcesses.stop(coordinator) }
        func text() -> String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        try #require(SweepHarness.wait(seconds: 300) { text().contains("the dashboard stays at") }, "the sweep did not finish: \(text())")
        kill(coordinator.processIdentifier, SIGTERM)
        // A hang guard, not a timing: it exits within a second when the signal is heard.
        try #require(SweepHarness.wait(seconds: 30) { !coordinator.isRunning }, "a keep-serving coordinator outlived SIGTERM by 30 s: \(text())")
        #expect(coordinator.terminationStatus == 0, "\(text())")
        #expect(text().contains("SIGTERM: the dashboard stops"), "\(text())")
    }

    @Test(.timeLimit(.minutes(10)))
    func sigintMidSweepStopsTheCoordinatorAndTheWorkersItStarted() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = try harness.file("sweep.json", #"{"name":"int","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":100}}"#)
        let output = harness.directory.appendingPathComponent("coordinator.out")
        let coordinator = try harness.start(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", try harness.cluster(workers: 1).path],
                                            output: output)
        defer { StartedProcesses.stop(coordinator) }
        func text() -> String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        try #require(SweepHarness.wait(seconds: 120) { text().contains("on localhost-w1, attempt 1") }, "no task started: \(text())")
        let worker = try #require(SweepHarness.pid(of: "localhost-w1", in: text()))
        kill(coordinator.processIdentifier, SIGINT)
        try #require(SweepHarness.wait(seconds: 30) { !coordinator.isRunning }, "the coordinator outlived SIGINT by 30 s: \(text())")
        #expect(coordinator.terminationStatus == 128 + SIGINT, "\(text())")
        #expect(text().contains("SIGINT: stopping the sweep"), "\(text())")
        #expect(SweepHarness.wait(seconds: 30) { StartedProcesses.isGone(worker) }, "worker \(worker) outlived its coordinator: \(text())")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.tasks().contains { $0.state != .done }, "the sweep finished before the signal; the test proved nothing")
    }
}
