import Foundation
import Testing
@testable import Coordinator

/// One fast and one honestly slow worker (pinned to a core it shares with busy loops, at a
/// lower priority than they, so the machine's other load cannot even it out; no sleeps of its
/// own) run a smoke sweep, after the fast worker ran it alone: the slow worker's
/// trainings get backup copies on the fast one, the first result of each task is the only
/// one accepted, and the losing copy is cancelled. Both wall times are printed for the record
/// (machines vary too much to assert on them).
@Suite struct MixedSpeedSweepTests {
    static let taskset = "/usr/bin/taskset"
    static var canPin: Bool { FileManager.default.isExecutableFile(atPath: taskset) && ProcessInfo.processInfo.activeProcessorCount >= 2 }
    static let sweep = #"{"name":"mixed","preset":"smoke","seeds":[1,2,3],"dense":true,"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":10}}"#

    /// `arguments` run pinned to `core` at `niceness`, their output going to `output`.
    static func pinned(_ core: Int, niceness: Int = 0, _ arguments: [String], output: URL) throws -> Process {
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: taskset)
        process.arguments = ["-c", String(core), "/usr/bin/nice", "-n", String(niceness)] + arguments
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try StartedProcesses.run(process)
        return process
    }

    /// A finished sweep: where it ran, its wall time and every log.
    struct Run {
        var harness: SweepHarness
        var wallSeconds: Double
        var coordinatorLog: String
        var workerLogs: [String: String]
    }

    /// The sweep with a coordinator that starts no worker itself, and `workers` (name, core,
    /// niceness) started by hand, one thread each, in order: each after the one before it has
    /// joined. (The slow worker, starting at a sixteenth of a core, once joined when the fast
    /// one had nearly finished the sweep, and nothing was left to back up.)
    static func run(_ workers: [(name: String, core: Int, niceness: Int)]) throws -> Run {
        let harness = try SweepHarness()
        let (coordinator, log, endpoint) = try HostilePeerTests.start(harness, sweep: sweep, fields: "",
                                                                       hosts: #"[{"name": "manual", "launcher": "manual", "workers": 2}]"#)
        defer { StartedProcesses.stop(coordinator) }
        let worker = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker").path
        var processes: [Process] = []
        defer { processes.forEach(StartedProcesses.stop) }
        for (name, core, niceness) in workers {
            processes.append(try pinned(core, niceness: niceness, [worker, "--connect", endpoint, "--name", name, "--threads", "1", "--heartbeat", "0.25",
                                                                   "--missed-heartbeats", "16", "--cache", harness.directory.appendingPathComponent("cache-\(name)").path],
                                        output: harness.directory.appendingPathComponent("\(name).log")))
            let joined = SweepHarness.wait(seconds: 300) {
                (try? String(contentsOf: log, encoding: .utf8))?.contains("worker \(name) joined") ?? false
            }
            try #require(joined, "worker \(name) did not join within 300 s")
        }
        coordinator.waitUntilExit()
        for process in processes { process.waitUntilExit() }
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")
        let wall = text.matches(of: #/coordinator: wall time: ([0-9.]+) s/#).last.flatMap { Double($0.1) }
        let logs = try Dictionary(uniqueKeysWithValues: workers.map { ($0.name, try String(contentsOf: harness.directory.appendingPathComponent("\($0.name).log"), encoding: .utf8)) })
        return Run(harness: harness, wallSeconds: try #require(wall, "no wall time in \(text)"), coordinatorLog: text, workerLogs: logs)
    }

    @Test(.enabled(if: canPin, "needs taskset and two cores"), .timeLimit(.minutes(12)))
    func aSlowWorkersTrainingIsBackedUpAndEachTaskAcceptedOnce() throws {
        // Two busy loops at niceness 10 share core 1 with the slow worker at 19: by the
        // scheduler's weights (110 each, 15) the worker gets about a sixteenth of the core,
        // while a test process beside them (1024) keeps four fifths of it.
        let scratch = try SweepHarness()
        defer { scratch.remove() }
        let hogs = try (1...2).map { try Self.pinned(1, niceness: 10, ["/bin/sh", "-c", "while :; do :; done"], output: scratch.directory.appendingPathComponent("hog-\($0).log")) }
        defer { hogs.forEach(StartedProcesses.stop) }

        let alone = try Self.run([("fast", 0, 0)])
        defer { alone.harness.remove() }
        let mixed = try Self.run([("slow", 1, 19), ("fast", 0, 0)])
        defer { mixed.harness.remove() }
        print("mixed-speed sweep (fast on core 0, slow at niceness 19 on core 1 beside 2 busy loops at 10): \(mixed.wallSeconds) s; the fast worker alone: \(alone.wallSeconds) s")

        try HostilePeerTests.expectEachResultAcceptedOnce(mixed.harness, sweep: Self.sweep)
        let journal = try Journal(directory: mixed.harness.run)
        let backedUp = try journal.backedUpTasks()
        #expect(!backedUp.isEmpty, "no backup copy was started: \(mixed.coordinatorLog)")
        for task in backedUp {
            let attempts = try journal.attemptRecords(task)
            #expect(attempts.filter { $0.outcome == "done" }.count == 1, "\(attempts)")
            #expect(attempts.filter { $0.backupOf != nil }.count == 1, "more than one backup of a task: \(attempts)")
            // The copy that lost was told to stop.
            for loser in attempts where loser.outcome == "superseded" {
                #expect(mixed.workerLogs[loser.worker]?.contains("cancelled \(task.prefix(12)): finished on") ?? false,
                        "attempt \(loser.number) on \(loser.worker) was not told to cancel: \(mixed.workerLogs[loser.worker] ?? "")")
            }
        }
        #expect(try journal.eventCount("quarantine") == 0)
        let learned = try journal.speeds()
        let speeds: [String: Double] = Dictionary(uniqueKeysWithValues: learned.map { ($0.worker, $0.imagesPerSecond) })
        print("learned speeds, images/s: \(speeds); trainings held back from a slower worker: \(try journal.eventCount("held")) time(s); backups: \(backedUp.count)")
        #expect(Set(speeds.keys) == ["slow", "fast"])

        let status: String = try CoordinatorProcessTests.run(["status", mixed.harness.run.path]).output
        #expect(status.contains("backup of attempt") && status.contains("images/s"), "\(status)")
        print(status)
    }
}
