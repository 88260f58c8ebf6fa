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
          .timeLimit(.minutes(10)))
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

    /// A bundle-shaped archive (`prunesweep/worker`, a wrapper running `prunesweep/bin/worker`)
    /// of this test build's worker: the launcher treats it as `make bundle`'s, which takes
    /// minutes to build. xz at its fastest setting, the format hosts unpack.
    static func testBundle(in directory: URL) throws -> URL {
        let stage = directory.appendingPathComponent("stage/prunesweep")
        try FileManager.default.createDirectory(at: stage.appendingPathComponent("bin"), withIntermediateDirectories: true)
        let worker = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker")
        try FileManager.default.copyItem(at: worker, to: stage.appendingPathComponent("bin/worker"))
        let wrapper = stage.appendingPathComponent("worker")
        try Data("#!/bin/sh\nexec \"$(dirname \"$(readlink -f \"$0\")\")/bin/worker\" \"$@\"\n".utf8).write(to: wrapper)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper.path)
        let bundle = directory.appendingPathComponent("prunesweep-worker-test.tar.xz")
        let pack = Process()
        pack.executableURL = URL(fileURLWithPath: "/bin/sh")
        pack.arguments = ["-c", "tar -C \"$1\" -cf - prunesweep | xz -0 -T2 > \"$2\"", "sh", stage.deletingLastPathComponent().path, bundle.path]
        try pack.run()
        pack.waitUntilExit()
        try #require(pack.terminationStatus == 0, "packing the test bundle failed")
        return bundle
    }

    @Test(.enabled(if: available || required, "no sshd takes ~/.ssh/prunesweep-test on 127.0.0.1:2222 (start one with scripts/sshd-localhost.sh): the ssh test is skipped"),
          .timeLimit(.minutes(10)))
    func aHostWithoutTheWorkerGetsTheBundleOnceAndReusesIt() throws {
        try #require(Self.available, "PRUNESWEEP_REQUIRE_SSH=1 but ssh to 127.0.0.1:2222 fails")
        let harness = try SweepHarness()
        defer { harness.remove() }
        // A fresh home: no worker, no dataset, no cache. The second run shows the dataset reused.
        let home = harness.directory.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let bundle = try Self.testBundle(in: harness.directory)
        let options = Self.options.map { "\"\($0)\"" }.joined(separator: ", ")
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 8, "bundle": "\(bundle.lastPathComponent)",
             "hosts": [{"name": "fresh", "launcher": "ssh", "address": "127.0.0.1", "sshOptions": [\(options)],
                        "workers": 1, "threads": 1, "workingDirectory": "\(home.path)",
                        "bundleDirectory": "\(home.path)/.cache/prunesweep/bundles",
                        "environment": {"HOME": "\(home.path)", "OPENBLAS_CORETYPE": "Haswell"}}]}
            """)
        // A real dataset, which the fresh home lacks: the workers fetch it from the coordinator.
        let data = try DatasetShipmentTests.linkedFashionMNIST(in: harness.directory)
        let sweep = try harness.file("sweep.json", """
            {"name": "bundle", "preset": "smoke", "seeds": [1], "synflowIterations": [10], "synflowDensities": [0.2],
             "overrides": {"dataset": "fashion-mnist", "width": 2, "epochs": 1, "trainLimit": 128, "testLimit": 64, "validationSize": 32}}
            """)
        let start = Date()
        let first = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--data-dir", data.path,
                                                    "--cluster", cluster.path])
        print("ssh: first sweep onto a fresh home took \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        #expect(first.status == 0, "\(first.output)\(first.errors)")
        #expect(first.output.contains("copied bundle"), "\(first.output)")
        #expect(first.output.contains("started worker fresh-w1 over ssh to 127.0.0.1"), "\(first.output)")
        let cached = home.appendingPathComponent(".cache/prunesweep/bundles")
        let entries = try FileManager.default.contentsOfDirectory(atPath: cached.path)
        #expect(entries.count == 1 && entries[0].count == 64, "\(entries)")
        #expect(try Journal(directory: harness.run).tasks().allSatisfy { $0.state == .done })
        let firstLogs = try Self.workerLogs(harness.run)
        #expect(firstLogs.contains("fetched the dataset from the coordinator"), "\(firstLogs)")

        let again = Date()
        let second = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.directory.appendingPathComponent("run2").path,
                                                     "--data-dir", data.path, "--cluster", cluster.path])
        print("ssh: second sweep, bundle and dataset cached, took \(String(format: "%.1f", Date().timeIntervalSince(again))) s")
        #expect(second.status == 0, "\(second.output)\(second.errors)")
        #expect(second.output.contains("is already on host fresh"), "\(second.output)")
        #expect(!second.output.contains("copied bundle"), "\(second.output)")
        let secondLogs = try Self.workerLogs(harness.directory.appendingPathComponent("run2"))
        #expect(!secondLogs.contains("fetched the dataset"), "\(secondLogs)")
        let records = try JSONDecoder().decode([ResultRecord].self, from: Data(contentsOf: harness.directory.appendingPathComponent("run2/results.json")))
        #expect(records.count == 1 && records.allSatisfy { $0.worker.hasPrefix("fresh-w") && $0.commit == BuildStampTests.headCommit })
    }

    /// The run's worker logs, one after the other.
    static func workerLogs(_ run: URL) throws -> String {
        let logs = run.appendingPathComponent("logs")
        return try FileManager.default.contentsOfDirectory(atPath: logs.path).filter { $0.hasPrefix("fresh-w") }.sorted()
            .map { try String(contentsOf: logs.appendingPathComponent($0), encoding: .utf8) }.joined()
    }
}
