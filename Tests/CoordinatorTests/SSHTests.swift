import Foundation
import Testing
@testable import Coordinator

/// The ssh launcher against a real sshd on loopback (scripts/sshd-localhost.sh; CI starts it
/// and sets PRUNESWEEP_REQUIRE_SSH=1, so there the test cannot be skipped).
@Suite struct SSHTests {
    static let key = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".ssh/prunesweep-test").path
    static let options = ["-p", "2222", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    static let required = ProcessInfo.processInfo.environment["PRUNESWEEP_REQUIRE_SSH"] == "1"

    static let available: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"] + options + ["127.0.0.1", "true"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    @Test(.enabled(if: available || required, "no sshd takes ~/.ssh/prunesweep-test on 127.0.0.1:2222 (start one with scripts/sshd-localhost.sh): the ssh test is skipped"),
          .timeLimit(.minutes(3)))
    func sshLaunchedWorkersRunTheSweepAndStopWithIt() throws {
        try #require(Self.available, "PRUNESWEEP_REQUIRE_SSH=1 but ssh to 127.0.0.1:2222 fails")
        let harness = try SweepHarness()
        defer { harness.remove() }
        let worker = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker")
        let options = Self.options.map { "\"\($0)\"" }.joined(separator: ", ")
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 8,
             "hosts": [{"name": "remote", "launcher": "ssh", "address": "127.0.0.1", "sshOptions": [\(options)],
                        "workers": 2, "threads": 1, "workerPath": "\(worker.path)", "workingDirectory": "\(harness.directory.path)",
                        "environment": {"OPENBLAS_CORETYPE": "Haswell"}}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"ssh","preset":"smoke","seeds":[1,2],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":5}}"#)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.contains("started worker remote-w1 over ssh to 127.0.0.1"), "\(result.output)")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        let workers = Set(try journal.tasks().flatMap { try journal.attemptWorkers($0.id) })
        #expect(!workers.isEmpty && workers.isSubset(of: ["remote-w1", "remote-w2"]), "\(workers)")

        // The remote workers ended with the sweep.
        let stopped = SweepHarness.wait(seconds: 20) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["pgrep", "-f", "name remote-w[12] --group remote"]
            process.standardOutput = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return false }
            process.waitUntilExit()
            return process.terminationStatus == 1
        }
        #expect(stopped, "an ssh-launched worker outlived the sweep")
    }
}
