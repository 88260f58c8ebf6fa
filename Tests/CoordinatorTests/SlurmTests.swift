import Foundation
import Testing
@testable import Coordinator

/// The Slurm launcher against a real single-node Slurm (scripts/slurm-single-node.sh; CI
/// starts it and sets PRUNESWEEP_REQUIRE_SLURM=1, so there the test cannot be skipped).
@Suite struct SlurmTests {
    static let required = ProcessInfo.processInfo.environment["PRUNESWEEP_REQUIRE_SLURM"] == "1"

    /// Runs a Slurm command; nil when it cannot be run or fails.
    static func slurm(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 ? text : nil
    }

    static let available: Bool = {
        guard let states = slurm(["sinfo", "-h", "-o", "%T"]) else { return false }
        return states.contains("idle") || states.contains("mix") || states.contains("alloc")
    }()

    @Test(.enabled(if: available || required, "no Slurm controller answers here (start one with scripts/slurm-single-node.sh): the Slurm test is skipped"),
          .timeLimit(.minutes(10)))
    func slurmLaunchedWorkersRunTheSweep() throws {
        try #require(Self.available, "PRUNESWEEP_REQUIRE_SLURM=1 but sinfo shows no usable node")
        let harness = try SweepHarness()
        defer { harness.remove() }
        let worker = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker")
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 8,
             "hosts": [{"name": "batch", "launcher": "slurm", "workers": 2, "threads": 1, "timeLimit": "10",
                        "workerPath": "\(worker.path)", "workingDirectory": "\(harness.directory.path)"}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"slurm","preset":"smoke","seeds":[1,2],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":5}}"#)
        let start = Date()
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path])
        print("slurm: smoke sweep with 2 Slurm-launched workers took \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        let job = try #require(result.output.firstMatch(of: /submitted Slurm job (\d+) for host batch/)?.1, "\(result.output)")
        #expect(result.output.contains("cancelled Slurm job \(job) of host batch"), "\(result.output)")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        let workers = Set(try journal.tasks().flatMap { try journal.attemptWorkers($0.id) })
        #expect(!workers.isEmpty && workers.isSubset(of: ["batch-w1", "batch-w2"]), "\(workers)")

        // The job is gone from the queue once the sweep ends.
        // squeue fails for an id it has already forgotten: that is gone too.
        let gone = SweepHarness.wait(seconds: 30) {
            Self.slurm(["squeue", "-h", "-j", String(job)])?.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ?? true
        }
        #expect(gone, "Slurm job \(job) is still queued after the sweep")
    }

    @Test(.enabled(if: available || required, "no Slurm controller answers here (start one with scripts/slurm-single-node.sh): the Slurm test is skipped"),
          .timeLimit(.minutes(10)))
    func aSlurmJobWithoutASharedDirectoryGetsTheBundleBySbcast() throws {
        try #require(Self.available, "PRUNESWEEP_REQUIRE_SLURM=1 but sinfo shows no usable node")
        let harness = try SweepHarness()
        defer { harness.remove() }
        let bundle = try SSHTests.testBundle(in: harness.directory)
        let sha256 = try WorkerBundle(path: bundle.path).sha256
        let unpacked = URL(fileURLWithPath: WorkerBundle.nodeLocalBase).appendingPathComponent(sha256)
        defer { try? FileManager.default.removeItem(at: unpacked) }
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 8, "bundle": "\(bundle.lastPathComponent)",
             "hosts": [{"name": "batch", "launcher": "slurm", "workers": 2, "threads": 1, "timeLimit": "10",
                        "workingDirectory": "\(harness.directory.path)"}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"sbcast","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2]}"#)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.contains("copies bundle \(sha256.prefix(12))"), "\(result.output)")
        let script = try String(contentsOf: harness.run.appendingPathComponent("logs/slurm-batch.sh"), encoding: .utf8)
        #expect(script.contains("sbcast --force") && script.contains("\(WorkerBundle.nodeLocalBase)/\(sha256)/prunesweep/worker"), "\(script)")
        #expect(FileManager.default.isExecutableFile(atPath: unpacked.appendingPathComponent("prunesweep/worker").path))
        let journal = try Journal(directory: harness.run)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        let workers = Set(try journal.tasks().flatMap { try journal.attemptWorkers($0.id) })
        #expect(!workers.isEmpty && workers.isSubset(of: ["batch-w1", "batch-w2"]), "\(workers)")
    }
}
