import Foundation
import Protocol
import TaskRuntime
import Testing
@testable import Coordinator

/// The sweep as it runs for users: a coordinator process, worker processes it starts from a
/// cluster file, ZeroMQ on loopback, real training on the smoke preset.
@Suite struct DistributedSweepTests {
    @Test(.timeLimit(.minutes(10)))
    func threeWorkersFinishEveryTaskOnceAndTheAggregateChecksOut() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = try harness.file("sweep.json", #"{"name":"three","preset":"smoke","seeds":[1,2,3],"synflowIterations":[1,10],"synflowDensities":[0.2,0.1],"overrides":{"epochs":2}}"#)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path,
                                                      "--cluster", try harness.cluster(workers: 3).path])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.contains("report: \(harness.run.path)/report.md"))

        let journal = try Journal(directory: harness.run)
        let plan = try SweepPlan(try SweepSpec.load(sweep))
        #expect(try journal.tasks().count == plan.tasks.count)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        // On a loaded machine one worker can fall far enough behind that its last training gets
        // a backup copy (docs/cluster.md); a copy is not a rerun, so only first attempts count.
        for task in try journal.tasks() {
            let runs = try journal.runWorkers(task.id)
            #expect(runs.count == 1, "task \(task.id.prefix(12)) ran \(runs.count) times besides backup copies")
        }
        let workers = Set(try journal.tasks().flatMap { try journal.attemptWorkers($0.id) })
        #expect(workers.count == 3, "the three workers shared the work: \(workers)")

        // The aggregate, recomputed here from results.json with a tabulated t quantile.
        let results = try JSONSerialization.jsonObject(with: Data(contentsOf: harness.run.appendingPathComponent("results.json"))) as! [[String: Any]]
        let aggregate = try JSONSerialization.jsonObject(with: Data(contentsOf: harness.run.appendingPathComponent("aggregate.json"))) as! [[String: Any]]
        #expect(results.count == 12)
        #expect(aggregate.count == 4)
        for row in aggregate {
            let group = results.filter {
                $0["options"] as? String == row["options"] as? String && $0["targetDensity"] as? Double == row["targetDensity"] as? Double
            }
            let accuracies = group.map { $0["finalTestAccuracy"] as! Double }
            #expect(accuracies.count == 3)
            let mean = accuracies.reduce(0, +) / 3
            let std = (accuracies.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot()
            let statistics = row["accuracy"] as! [String: Any]
            #expect(abs(statistics["mean"] as! Double - mean) < 1e-12)
            #expect(abs(statistics["std"] as! Double - std) < 1e-12)
            #expect(abs(statistics["ci95"] as! Double - 4.302652729749464 * std / 3.0.squareRoot()) < 1e-9)
            #expect((row["missingSeeds"] as! [Any]).isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func aKilledWorkersTaskResumesElsewhereBitIdentical() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = try harness.file("sweep.json", #"{"name":"kill","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":40}}"#)
        let cluster = try harness.cluster(workers: 2, restarts: 0)
        let output = harness.directory.appendingPathComponent("coordinator.log")
        let coordinator = try harness.start(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path], output: output)
        defer { StartedProcesses.stop(coordinator) }
        let plan = try SweepPlan(try SweepSpec.load(sweep))
        let train = try #require(plan.tasks.first { $0.labels.reported }).id
        var victim: String?
        let checkpointed = SweepHarness.wait(seconds: 120) {
            guard let journal = try? Journal(directory: harness.run), let row = try? journal.task(train),
                  row.state == .running, row.checkpoint != nil else { return false }
            victim = try? journal.attemptWorkers(train).last
            return victim != nil
        }
        try #require(checkpointed, "the training task never reported a checkpoint")
        let log = try String(contentsOf: output, encoding: .utf8)
        let victimName = try #require(victim)
        let pid = try #require(SweepHarness.pid(of: victimName, in: log))
        kill(pid, SIGKILL)
        coordinator.waitUntilExit()
        let text = try String(contentsOf: output, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")

        let journal = try Journal(directory: harness.run)
        let workers = try journal.runWorkers(train)
        #expect(workers.count == 2 && workers[0] == victim && workers[1] != victim, "resumed on another worker: \(workers)")
        #expect(text.contains("resumes from its last checkpoint"), "\(text)")
        #expect(text.contains("attempt 2 (resuming from its checkpoint)"), "\(text)")

        // The same sweep without a kill gives the same bytes.
        let referenceRun = harness.directory.appendingPathComponent("reference")
        let clean = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", referenceRun.path, "--cluster", cluster.path])
        #expect(clean.status == 0, "\(clean.errors)")
        let killed = try #require(try journal.task(train)?.outputs)
        let uninterrupted = try #require(try Journal(directory: referenceRun).task(train)?.outputs)
        let weights = try JSONDecoder().decode([String: String].self, from: Data(killed.utf8))["weights"]
        let reference = try JSONDecoder().decode([String: String].self, from: Data(uninterrupted.utf8))["weights"]
        #expect(weights != nil && weights == reference, "the resumed task's final weights differ from an uninterrupted run's")
    }

    /// A worker the coordinator did not start keeps training while the coordinator is killed
    /// and restarted; it reconnects, says which task it runs, and the new coordinator adopts it.
    @Test(.timeLimit(.minutes(10)))
    func aWorkerThatOutlivesTheCoordinatorIsAdoptedAfterItsRestart() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let probe = try ZMQSocket(.router)
        let port = try #require(try probe.bind("tcp://127.0.0.1:*").split(separator: ":").last.map(String.init))
        probe.close()
        let sweep = try harness.file("sweep.json", #"{"name":"adopt","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":100}}"#)
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:\(port)", "heartbeatSeconds": 0.25, "missedHeartbeats": 8,
             "hosts": [{"name": "remote", "launcher": "manual", "workers": 1}]}
            """)
        let arguments = ["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path]
        let first = try harness.start(arguments, output: harness.directory.appendingPathComponent("first.log"))
        defer { StartedProcesses.stop(first) }
        let worker = Process()
        worker.executableURL = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker")
        worker.arguments = ["--connect", "tcp://127.0.0.1:\(port)", "--name", "outlander", "--threads", "1", "--heartbeat", "0.25",
                            "--missed-heartbeats", "8", "--cache", harness.directory.appendingPathComponent("cache").path]
        let workerLog = harness.directory.appendingPathComponent("worker.log")
        FileManager.default.createFile(atPath: workerLog.path, contents: nil)
        worker.standardOutput = try FileHandle(forWritingTo: workerLog)
        worker.standardError = worker.standardOutput
        try StartedProcesses.run(worker)
        defer { StartedProcesses.stop(worker) }

        let train = try #require(try SweepPlan(try SweepSpec.load(sweep)).tasks.first { $0.labels.reported }).id
        try #require(SweepHarness.wait(seconds: 120) {
            guard let row = try? Journal(directory: harness.run).task(train) else { return false }
            return row.state == .running && row.checkpoint != nil
        }, "the training task never reported a checkpoint")
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let secondLog = harness.directory.appendingPathComponent("second.log")
        let second = try harness.start(arguments, output: secondLog)
        defer { StartedProcesses.stop(second) }
        second.waitUntilExit()
        worker.waitUntilExit()
        let text = try String(contentsOf: secondLog, encoding: .utf8)
        #expect(second.terminationStatus == 0, "\(text)")
        #expect(worker.terminationStatus == 0, "\((try? String(contentsOf: workerLog, encoding: .utf8)) ?? "")")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.task(train)?.state == .done)
        #expect(try journal.attemptCounts()[train] == 1, "the task started again instead of being adopted")
        #expect(try journal.eventCount("adopt") == 1, "\(text)")
        #expect(text.contains("outlander still runs train synflow"), "\(text)")
    }

    @Test(.timeLimit(.minutes(10)))
    func rogueFramesAreCountedAndTheSweepGoesOn() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = try harness.file("sweep.json", #"{"name":"rogue","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":20}}"#)
        let output = harness.directory.appendingPathComponent("coordinator.log")
        let coordinator = try harness.start(["--sweep", sweep.path, "--run-dir", harness.run.path,
                                             "--cluster", try harness.cluster(workers: 1).path], output: output)
        defer { StartedProcesses.stop(coordinator) }
        let endpointFile = harness.run.appendingPathComponent("coordinator.endpoint")
        try #require(SweepHarness.wait(seconds: 60) { FileManager.default.fileExists(atPath: endpointFile.path) })
        let endpoint = try String(contentsOf: endpointFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        let rogue = try ZMQSocket(.dealer)
        try rogue.connect(endpoint)
        let frames: [[Data]] = [
            [Data("garbage".utf8)],                                                                   // too few frames
            [Data([0xff, 0x00, 0x13]), Data("x".utf8), Data("y".utf8)],                               // not our protocol
            [Data("prunesweep/99".utf8), Data("hello".utf8), Data("{}".utf8)],                        // wrong version
            [Data("prunesweep/1".utf8), Data("hello".utf8), Data("{\"worker\":".utf8)],               // truncated header
            [Data("prunesweep/1".utf8), Data("launch-missiles".utf8), Data("{}".utf8)],               // unknown type
            Wire.encode(.artifactChunk(ArtifactChunk(hash: "ab", offset: 90, total: 100), Data(count: 20))), // chunk past its end
        ]
        // Well-formed, but from a peer that holds no task (and the bytes do not hash to the
        // name they were sent under): refused.
        let forged = Wire.encode(.artifactChunk(ArtifactChunk(hash: String(repeating: "0", count: 64), offset: 0, total: 3), Data([1, 2, 3])))
        for message in frames + [forged] { _ = try rogue.send(message, dontWait: false) }
        coordinator.waitUntilExit()
        rogue.close()
        let text = try String(contentsOf: output, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")
        #expect(text.contains("rejected frames: \(frames.count)"), "\(text)")
        #expect(try Journal(directory: harness.run).eventCount("rejected-frame") == frames.count)
        #expect(text.contains("refused messages: 1"), "\(text)")
        #expect(try Journal(directory: harness.run).eventCount("artifact-refused") == 1, "a forged artifact was not refused")
        let store = try ArtifactStore(runDirectory: harness.run)
        #expect(!store.contains(String(repeating: "0", count: 64)))
        #expect(try Journal(directory: harness.run).tasks().allSatisfy { $0.state == .done })
    }

    /// ssh to a port where nothing listens (loopback only): the launch fails, the log names
    /// the host, and with no other worker the coordinator stops with an error.
    @Test(.timeLimit(.minutes(10)))
    func anUnreachableSSHHostIsReportedByName() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "restarts": 0,
             "hosts": [{"name": "far-away", "launcher": "ssh", "address": "127.0.0.1", "sshOptions": ["-p", "1"]}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"ssh","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2]}"#)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path])
        #expect(result.status == 2)
        #expect(result.output.contains("worker far-away-w1 could not be started: ssh to 127.0.0.1 failed (status 255"), "\(result.output)")
        #expect(result.errors.contains("no worker is running and none can be started"), "\(result.errors)")
    }

    /// A local worker that ends at once is restarted, and each warning quotes the last line
    /// it wrote (why it could not start), so the reason is in the coordinator's own output.
    @Test(.timeLimit(.minutes(10)))
    func aWorkerThatCannotStartIsReportedWithItsLastLine() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let worker = try harness.file("broken-worker", "#!/bin/sh\necho starting\necho 'error: libzmq.so.5: cannot open shared object file' >&2\nexit 127\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: worker.path)
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "restarts": 1, "hosts": [{"name": "box", "workerPath": "\(worker.path)"}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"broken","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2]}"#)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path])
        #expect(result.status == 2)
        let said = "exited with status 127 (its log ends: error: libzmq.so.5: cannot open shared object file)"
        #expect(result.output.contains("worker box-w1 \(said); restarting it"), "\(result.output)")
        #expect(result.output.contains("worker box-w1 \(said) and has used its 1 restarts"), "\(result.output)")
        #expect(result.errors.contains("no worker is running and none can be started"), "\(result.errors)")
    }

    /// Per-slot GPUs reach the workers and results.json; a host cap of 1 runs one task at a time.
    @Test(.timeLimit(.minutes(10)))
    func gpuSlotsAreRecordedAndTheHostCapHolds() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 8,
             "hosts": [{"name": "gpu-box", "workers": 2, "threads": 1, "gpus": ["7", "9"], "maxTasks": 1}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"gpus","preset":"smoke","seeds":[1,2],"synflowIterations":[10],"synflowDensities":[0.2,0.1],"overrides":{"epochs":3}}"#)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        let records = try JSONDecoder().decode([ResultRecord].self, from: Data(contentsOf: harness.run.appendingPathComponent("results.json")))
        #expect(records.count == 4)
        for record in records {
            #expect(record.gpu == (record.worker == "gpu-box-w1" ? "7" : "9"), "\(record.worker) ran with GPU \(record.gpu ?? "none")")
        }
        let attempts = try Journal(directory: harness.run).attempts()
        for (index, attempt) in attempts.enumerated() {
            for other in attempts[(index + 1)...] {
                #expect(other.started >= (attempt.ended ?? .infinity), "two tasks ran at once on a host capped at 1")
            }
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func slotsPerGPUStartThatManyWorkersOnEachListedGPU() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        // The CPU trains (no GPU here); what is checked is which GPU each slot is handed.
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 16,
             "hosts": [{"name": "gpu-box", "gpus": ["7", "9"], "slotsPerGPU": 2, "threads": 1, "device": "cpu"}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"slots","preset":"smoke","seeds":[1,2],"synflowIterations":[10],"synflowDensities":[0.2,0.1]}"#)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        let joins = result.output.split(separator: "\n").filter { $0.contains(" joined from ") }
        for (worker, gpu) in [("gpu-box-w1", "7"), ("gpu-box-w2", "9"), ("gpu-box-w3", "7"), ("gpu-box-w4", "9")] {
            #expect(joins.contains { $0.contains("worker \(worker) joined") && $0.contains("GPU \(gpu),") }, "\(worker) did not join with GPU \(gpu): \(joins)")
        }
        #expect(!result.output.contains("gpu-box-w5"), "\(result.output)")
        let records = try JSONDecoder().decode([ResultRecord].self, from: Data(contentsOf: harness.run.appendingPathComponent("results.json")))
        #expect(records.count == 4 && records.allSatisfy { $0.gpu == (["gpu-box-w1", "gpu-box-w3"].contains($0.worker) ? "7" : "9") })
    }

    @Test func invalidClusterFilesFailNamingTheFieldAndWriteNothing() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let cases = [
            (#"{"hosts": [{"name": "a", "workers": 0}]}"#, "field hosts[0].workers: 0 must be ≥ 1"),
            (#"{"hosts": [{"name": "a", "lanucher": "local"}]}"#, "field hosts[0].lanucher is not a known field"),
            (#"{"hosts": [{"name": "a", "launcher": "carrier-pigeon"}]}"#, "field hosts[0].launcher is \"carrier-pigeon\""),
            (#"{"bind": "127.0.0.1:5555", "hosts": [{"name": "a"}]}"#, "field bind"),
            (#"{"heartbeatSeconds": "fast", "hosts": [{"name": "a"}]}"#, "field heartbeatSeconds has the wrong type"),
            (#"{"bind": "tcp://127.0.0.1:*"}"#, "field hosts is missing"),
            (#"{"hosts": [{"name": "a", "slotsPerGPU": 2}]}"#, "field hosts[0].slotsPerGPU needs field gpus"),
            (#"{"hosts": [{"name": "a", "gpus": ["0", "1"], "slotsPerGPU": 2, "workers": 3}]}"#, "field hosts[0].workers: 3 is not gpus × slotsPerGPU = 2 × 2"),
            (#"{"hosts": [{"name": "a", "gpus": ["0"], "slotsPerGPU": 0}]}"#, "field hosts[0].slotsPerGPU: 0 must be ≥ 1"),
            (#"{"hosts": [{"name": "a", "launcher": "slurm", "gpus": ["0"], "slotsPerGPU": 2}]}"#, "Slurm hands out a job's GPUs itself"),
            (#"{"hosts": [{"name": "-a"}]}"#, #"field hosts[0].name: "-a" must be letters, digits"#),
            (#"{"hosts": [{"name": "rack 1/a"}]}"#, #"field hosts[0].name: "rack 1/a" must be letters, digits"#),
            (#"{"hosts": [{"name": "a", "launcher": "ssh", "address": "-oProxyCommand=x"}]}"#,
             #"field hosts[0].address: "-oProxyCommand=x" is not an ssh destination"#),
            (#"{"bundle": "no-such.tar.xz", "hosts": [{"name": "a"}]}"#, "field bundle: \(harness.directory.path)/no-such.tar.xz does not exist"),
        ]
        for (index, (text, message)) in cases.enumerated() {
            let cluster = try harness.file("cluster-\(index).json", text)
            let result = try CoordinatorProcessTests.run(["--sweep", "synflow-iters", "--run-dir", harness.run.path, "--cluster", cluster.path])
            #expect(result.status == 2)
            #expect(result.errors.contains(cluster.path) && result.errors.contains(message), "\(result.errors)")
            #expect(!FileManager.default.fileExists(atPath: harness.run.path))
        }
    }
}
