import Foundation
import Testing
@testable import Coordinator
import Protocol

/// CURVE on the wire: keys from `coordinator keygen`, workers let in by their public key,
/// strangers and keyless workers refused (and logged on both sides) before any task.
@Suite struct SecurityTests {
    static func worker(_ arguments: [String], log: URL) throws -> Process {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker")
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: log)
        process.standardError = process.standardOutput
        try StartedProcesses.run(process)
        return process
    }

    @Test(.timeLimit(.minutes(10)))
    func onlyAuthorisedWorkersGetWork() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let keys = harness.directory.appendingPathComponent("keys")
        // A Z85 key may begin with "-"; the workers the coordinator starts must still read it.
        var coordinatorKey = try CurveKeyPair.generate()
        while !coordinatorKey.publicKey.hasPrefix("-") { coordinatorKey = try CurveKeyPair.generate() }
        try coordinatorKey.write(to: keys.appendingPathComponent("coordinator"))
        for name in ["worker", "stranger"] {
            let result = try CoordinatorProcessTests.run(["keygen", "--out", keys.appendingPathComponent(name).path])
            try #require(result.status == 0, "\(result.errors)")
        }
        let again = try CoordinatorProcessTests.run(["keygen", "--out", keys.appendingPathComponent("worker").path])
        #expect(again.status == 2 && again.errors.contains("exists"), "keygen overwrote a key")
        let secretMode = try FileManager.default.attributesOfItem(atPath: keys.appendingPathComponent("worker.key").path)[.posixPermissions] as? Int
        #expect(secretMode == 0o600)

        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 8,
             "security": {"mode": "curve", "coordinatorKey": "keys/coordinator.key", "workerKey": "keys/worker.key"},
             "hosts": [{"name": "localhost", "workers": 1, "threads": 1}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"curve","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":40}}"#)
        let output = harness.directory.appendingPathComponent("coordinator.log")
        let coordinator = try harness.start(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path], output: output)
        defer { StartedProcesses.stop(coordinator) }
        let endpointFile = harness.run.appendingPathComponent("coordinator.endpoint")
        try #require(SweepHarness.wait(seconds: 60) { FileManager.default.fileExists(atPath: endpointFile.path) })
        let endpoint = try String(contentsOf: endpointFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        let strangerLog = harness.directory.appendingPathComponent("stranger.log")
        let stranger = try Self.worker(["--connect", endpoint, "--name", "stranger", "--threads", "1",
                                        "--server-key", keys.appendingPathComponent("coordinator.pub").path,
                                        "--key", keys.appendingPathComponent("stranger.key").path,
                                        "--cache", harness.directory.appendingPathComponent("c1").path], log: strangerLog)
        let nakedLog = harness.directory.appendingPathComponent("naked.log")
        let naked = try Self.worker(["--connect", endpoint, "--name", "naked", "--threads", "1",
                                     "--cache", harness.directory.appendingPathComponent("c2").path], log: nakedLog)
        defer { [stranger, naked].forEach(StartedProcesses.stop) }
        stranger.waitUntilExit()
        naked.waitUntilExit()
        coordinator.waitUntilExit()

        let text = try String(contentsOf: output, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")
        #expect(text.contains("CURVE: encrypted and authenticated"))
        let strangerKey = try String(contentsOf: keys.appendingPathComponent("stranger.pub"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(text.contains("refused a worker from 127.0.0.1: its key \(strangerKey) is not authorised"), "\(text)")
        #expect(stranger.terminationStatus == 3)
        #expect(try String(contentsOf: strangerLog, encoding: .utf8).contains("the coordinator does not authorise this worker's key \(strangerKey)"))
        #expect(text.contains("refused a peer that failed the CURVE handshake"), "the keyless worker's refusal is not in the coordinator's log: \(text)")
        #expect(naked.terminationStatus == 3)
        #expect(try String(contentsOf: nakedLog, encoding: .utf8).contains("the coordinator speaks CURVE and this worker has no keys"))
        let journal = try Journal(directory: harness.run)
        #expect(try journal.eventCount("refused-worker") >= 1)
        let workers = Set(try journal.tasks().flatMap { try journal.attemptWorkers($0.id) })
        #expect(workers == ["localhost-w1"], "a refused worker got a task: \(workers)")
        #expect(!text.contains("stranger joined") && !text.contains("naked joined"))
    }

    @Test func aNonLoopbackBindNeedsKeys() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let cluster = try harness.file("cluster.json", #"{"bind": "tcp://0.0.0.0:*", "hosts": [{"name": "a"}]}"#)
        let result = try CoordinatorProcessTests.run(["--sweep", "synflow-iters", "--run-dir", harness.run.path, "--cluster", cluster.path])
        #expect(result.status == 2)
        #expect(result.errors.contains("field security.coordinatorKey is missing") && result.errors.contains("coordinator keygen"), "\(result.errors)")
        #expect(!FileManager.default.fileExists(atPath: harness.run.path))
    }
}
