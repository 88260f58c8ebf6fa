import BuildStamp
import Foundation
import Protocol
import Testing
@testable import Coordinator

/// The build stamp: the programs carry the commit they were built from, workers of another
/// build are refused by name unless the sweep allows mixed builds, and results.json records
/// the commit of the worker that trained each row.
@Suite struct BuildStampTests {
    /// `git rev-parse HEAD` of the tree these tests were built from.
    static let headCommit: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        guard let result = try? Subprocess.run(["git", "-C", root.path, "rev-parse", "HEAD"]), result.status == 0 else { return "unknown" }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    @Test func theBuildIsStampedWithTheCheckoutsCommit() throws {
        #expect(BuildInfo.current.commit == Self.headCommit)
        #expect(BuildInfo.current.commit.count == 40 || BuildInfo.current.commit == "unknown")
    }

    @Test func identifiersRoundTripAndTellDirtyBuildsApart() {
        let clean = BuildInfo(commit: "a1b2c3")
        let dirty = BuildInfo(commit: "a1b2c3", changes: "0f0f0f0f0f0f")
        #expect(BuildInfo(identifier: clean.identifier) == clean && !clean.dirty)
        #expect(BuildInfo(identifier: dirty.identifier) == dirty && dirty.dirty)
        #expect(clean.identifier != dirty.identifier)
        #expect(dirty.description == "a1b2c3 (dirty, changes 0f0f0f0f0f0f)")
    }

    @Test func programsPrintTheirBuild() throws {
        let directory = CoordinatorProcessTests.coordinator.deletingLastPathComponent()
        for program in ["coordinator", "worker"] {
            let result = try Subprocess.run([directory.appendingPathComponent(program).path, "--version"])
            #expect(result.output.contains("commit \(BuildInfo.current.commit.prefix(12))"), "\(program): \(result.output)\(result.errors)")
        }
    }

    private static let sweep = #"{"name":"stamp","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2]}"#
    private static let otherBuild = BuildInfo(commit: String(repeating: "0", count: 40))

    /// A coordinator with a manual host (it starts no worker itself), started with `extra`.
    private static func start(_ harness: SweepHarness, _ extra: [String] = []) throws -> (Process, URL, String) {
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 16,
             "hosts": [{"name": "remote", "launcher": "manual", "workers": 1}]}
            """)
        let sweepFile = try harness.file("sweep.json", sweep)
        let log = harness.directory.appendingPathComponent("coordinator.log")
        let coordinator = try harness.start(["--sweep", sweepFile.path, "--run-dir", harness.run.path, "--cluster", cluster.path] + extra, output: log)
        let endpointFile = harness.run.appendingPathComponent("coordinator.endpoint")
        try #require(SweepHarness.wait(seconds: 60) { FileManager.default.fileExists(atPath: endpointFile.path) })
        let endpoint = try String(contentsOf: endpointFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return (coordinator, log, endpoint)
    }

    private static func records(_ harness: SweepHarness) throws -> [ResultRecord] {
        try JSONDecoder().decode([ResultRecord].self, from: Data(contentsOf: harness.run.appendingPathComponent("results.json")))
    }

    @Test(.timeLimit(.minutes(10)))
    func aWorkerOfAnotherCommitIsRefusedNamingBothAndResultsCarryTheCommit() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let (coordinator, log, endpoint) = try Self.start(harness)
        defer { StartedProcesses.stop(coordinator) }

        let stranger = try HandWrittenPeer(endpoint: endpoint, name: "stranger", build: Self.otherBuild.identifier)
        let answers = stranger.collect(seconds: 3)
        stranger.close()
        var refusal: String?, tasks = 0
        for answer in answers {
            if case .shutdown(let shutdown) = answer { refusal = shutdown.reason }
            if case .task = answer { tasks += 1 }
        }
        #expect(refusal?.contains(Self.otherBuild.identifier) == true && refusal?.contains(BuildInfo.current.identifier) == true, "\(answers)")
        #expect(tasks == 0, "a refused worker got a task")

        // A worker of this build finishes the sweep; its rows carry this build's commit.
        let worker = Process()
        worker.executableURL = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker")
        worker.arguments = ["--connect", endpoint, "--name", "same", "--threads", "1", "--heartbeat", "0.25", "--missed-heartbeats", "16",
                            "--cache", harness.directory.appendingPathComponent("cache").path]
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try StartedProcesses.run(worker)
        defer { StartedProcesses.stop(worker) }
        coordinator.waitUntilExit()
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")
        #expect(text.contains("refused worker stranger on loopback: it is build \(Self.otherBuild.identifier), this coordinator \(BuildInfo.current.identifier)"), "\(text)")
        let records = try Self.records(harness)
        #expect(records.count == 1)
        for record in records {
            #expect(record.commit == Self.headCommit && record.dirty == BuildInfo.current.dirty)
            #expect(record.device == "cpu" && record.precision == "fp32")
            #expect((record.secondsPerEpoch ?? 0) > 0 && record.secondsPerEpoch! <= record.wallSeconds)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func mixedBuildsJoinWhenAllowedAndEachRowKeepsItsWorkersCommit() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let (coordinator, log, endpoint) = try Self.start(harness, ["--allow-mixed-builds"])
        defer { StartedProcesses.stop(coordinator) }
        let stranger = try HandWrittenPeer(endpoint: endpoint, name: "stranger", build: Self.otherBuild.identifier)
        defer { stranger.close() }
        // The stranger runs every task (θ0, the SynFlow mask, the training) honestly in this process.
        let tasks = try SweepPlan(try JSONDecoder().decode(SweepSpec.self, from: Data(Self.sweep.utf8))).tasks.count
        for _ in 0..<tasks {
            try stranger.send(.ready(Ready(credit: 1)))
            let task = try #require(stranger.nextTask(seconds: 30), "the stranger got no task")
            let answer = try stranger.complete(task, harness: harness)
            #expect(answer != nil, "task \(task.taskID.prefix(12)) was not accepted")
        }
        coordinator.waitUntilExit()
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")
        #expect(text.contains("mixed builds are allowed"), "\(text)")
        let records = try Self.records(harness)
        #expect(records.count == 1 && records.allSatisfy { $0.commit == Self.otherBuild.commit && $0.dirty == false }, "\(records)")
    }
}

/// The report's line about the builds behind the results.
@Suite struct BuildProvenanceTests {
    private static func record(commit: String?, dirty: Bool?) -> ResultRecord {
        var record = ResultsTests.record("synflow", seed: 1, density: 0.1, accuracy: 0.8)
        record.commit = commit
        record.dirty = dirty
        return record
    }

    @Test func oneBuildIsNamedOnceAndMixedBuildsAreCountedMostFirst() {
        let a = String(repeating: "a", count: 40), b = String(repeating: "b", count: 40)
        #expect(BuildProvenance.line(for: [Self.record(commit: a, dirty: false), Self.record(commit: a, dirty: false)])
                == "commit aaaaaaaaaaaa (2 results)")
        let mixed = [Self.record(commit: b, dirty: true), Self.record(commit: a, dirty: false),
                     Self.record(commit: a, dirty: false), Self.record(commit: nil, dirty: nil)]
        #expect(BuildProvenance.line(for: mixed) == "commits aaaaaaaaaaaa (2 results), bbbbbbbbbbbb dirty (1 result), unrecorded (1 result)")
    }
}
