import Foundation
import Model
import Protocol
import TaskRuntime
import Testing
@testable import Coordinator

/// Peers that speak the wire protocol by hand, as a broken or hostile worker could, against a
/// coordinator process on the smoke preset (loopback only). Whatever they say, the sweep
/// finishes with every result accepted once, finished by a real worker started afterwards.
@Suite struct HostilePeerTests {
    /// A coordinator that starts no worker of its own (a manual host, unless `hosts` says
    /// otherwise), on fast heartbeats, with room for the retries a lying worker causes;
    /// `fields` are further cluster.json fields (`"stallSeconds": 8, `), `arguments` further
    /// coordinator arguments.
    static func start(_ harness: SweepHarness, sweep: String, fields: String = #""quarantineAfter": 5, "#,
                      hosts: String = #"[{"name": "remote", "launcher": "manual", "workers": 1}]"#, arguments: [String] = []) throws -> (Process, URL, String) {
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 16, "retryLimit": 3,
             \(fields)"hosts": \(hosts)}
            """)
        let sweepFile = try harness.file("sweep.json", sweep)
        let log = harness.directory.appendingPathComponent("coordinator.log")
        let coordinator = try harness.start(["--sweep", sweepFile.path, "--run-dir", harness.run.path, "--cluster", cluster.path] + arguments, output: log)
        let endpointFile = harness.run.appendingPathComponent("coordinator.endpoint")
        // The file appears before its endpoint is written: read until the endpoint is there.
        var endpoint = ""
        try #require(SweepHarness.wait(seconds: 60) {
            endpoint = ((try? String(contentsOf: endpointFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            return !endpoint.isEmpty
        })
        return (coordinator, log, endpoint)
    }

    /// Starts an honest worker process that finishes what the hostile peers left, and waits
    /// for the coordinator; returns its log.
    /// `arguments` go to the worker as well (its CURVE keys).
    static func finish(_ harness: SweepHarness, _ coordinator: Process, log: URL, endpoint: String, arguments: [String] = []) throws -> String {
        let worker = Process()
        worker.executableURL = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker")
        worker.arguments = ["--connect", endpoint, "--name", "honest", "--threads", "1", "--heartbeat", "0.25",
                            "--missed-heartbeats", "16", "--cache", harness.directory.appendingPathComponent("cache").path] + arguments
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try StartedProcesses.run(worker)
        defer { StartedProcesses.stop(worker) }
        coordinator.waitUntilExit()
        worker.waitUntilExit()
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")
        return text
    }

    /// Every planned task is done, each accepted exactly once, and no result was lost.
    static func expectEachResultAcceptedOnce(_ harness: SweepHarness, sweep: String) throws {
        let journal = try Journal(directory: harness.run)
        let plan = try SweepPlan(try JSONDecoder().decode(SweepSpec.self, from: Data(sweep.utf8)))
        #expect(try journal.tasks().count == plan.tasks.count)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        #expect(try journal.eventCount("done") == plan.tasks.count, "a result was accepted more than once")
        #expect(try journal.eventCount("duplicate-result") == 0)
        #expect(try journal.results().count == plan.tasks.filter(\.labels.reported).count)
    }

    @Test(.timeLimit(.minutes(10)))
    func creditFloodsGetOneTaskAndForgeriesForAnotherWorkersTaskAreRefused() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        // Two seeds: two θ0 tasks are runnable at once, so a flood could take both.
        let sweep = #"{"name":"flood","preset":"smoke","seeds":[1,2],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":1}}"#
        let (coordinator, log, endpoint) = try Self.start(harness, sweep: sweep)
        defer { StartedProcesses.stop(coordinator) }

        let flooder = try HandWrittenPeer(endpoint: endpoint, name: "flooder")
        try flooder.send(.ready(Ready(credit: 1_000_000_000)))
        try flooder.send(.ready(Ready(credit: .max)))
        let tasks = flooder.collect(seconds: 2).compactMap { message -> TaskAssignment? in
            if case .task(let task) = message { return task }
            return nil
        }
        #expect(tasks.count == 1, "a one-slot worker that asked for a billion tasks got \(tasks.count)")
        let held = try #require(tasks.first)

        let forger = try HandWrittenPeer(endpoint: endpoint, name: "forger")
        try forger.send(.progress(Protocol.Progress(taskID: held.taskID, attempt: held.attempt, epoch: 1, epochs: 1, metrics: [:], checkpoint: nil)))
        let junk = Data("not a weights file".utf8)
        try forger.upload(junk)
        try forger.send(.result(TaskResult(taskID: held.taskID, attempt: held.attempt, outputs: ["weights": ArtifactStore.hash(junk)], metrics: "{}")))
        let cancels = forger.collect(seconds: 1).filter { if case .cancel(let cancel) = $0 { cancel.taskID == held.taskID } else { false } }
        #expect(cancels.count == 2, "the forged progress and result were not both answered with cancel")

        // The holder's honest result is taken; then it leaves and a real worker does the rest.
        let answer = try flooder.complete(held, harness: harness)
        #expect(answer == .accepted(Accepted(taskID: held.taskID, attempt: held.attempt, duplicate: false)))
        // A done task is never reopened: the same worker's error for it afterwards is refused.
        try flooder.send(.error(TaskFailure(taskID: held.taskID, attempt: held.attempt, message: "changed my mind")))
        #expect(flooder.collect(seconds: 1).contains { if case .cancel(let cancel) = $0 { cancel.taskID == held.taskID } else { false } })
        #expect(try Journal(directory: harness.run).task(held.taskID)?.state == .done)
        flooder.close()
        forger.close()
        let text = try Self.finish(harness, coordinator, log: log, endpoint: endpoint)
        #expect(text.contains("refused messages: 4"), "\(text)")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.eventCount("refused-message") == 3)
        #expect(try journal.eventCount("artifact-refused") == 1)
        #expect(!(try ArtifactStore(runDirectory: harness.run).contains(ArtifactStore.hash(junk))))
        #expect(try journal.attemptWorkers(held.taskID) == ["flooder"])
        try Self.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }

    /// A peer claiming a billion slots and asking for a billion tasks, against a coordinator
    /// that lets a worker it did not start run 2 at once: it is cut to 2 with one warning,
    /// holds at most 2 tasks at any moment (and does reach 2), and finishes the sweep alone,
    /// each result accepted once.
    @Test(.timeLimit(.minutes(10)))
    func aPeerClaimingABillionSlotsHoldsAtMostItsBound() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        // Three seeds: three θ0 tasks are runnable at once, one more than the bound.
        let sweep = #"{"name":"greedy","preset":"smoke","seeds":[1,2,3],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":1}}"#
        let (coordinator, log, endpoint) = try Self.start(harness, sweep: sweep, arguments: ["--max-worker-slots", "2"])
        defer { StartedProcesses.stop(coordinator) }
        let greedy = try HandWrittenPeer(endpoint: endpoint, name: "greedy", slots: 1_000_000_000)
        defer { greedy.close() }
        try greedy.send(.ready(Ready(credit: 1_000_000_000)))
        var held: [String: TaskAssignment] = [:], most = 0, finished = false
        let deadline = Date().addingTimeInterval(400)
        while !finished && Date() < deadline {
            // A second's wait after every result: a task beyond the bound would come in it.
            for message in greedy.collect(seconds: 1) {
                if case .task(let task) = message { held[task.taskID] = task }
                if case .shutdown = message { finished = true }
            }
            most = max(most, held.count)
            #expect(held.count <= 2, "the peer holds \(held.count) tasks at once")
            guard let task = held.values.min(by: { $0.taskID < $1.taskID }) else { continue }
            #expect(try greedy.complete(task, harness: harness) == .accepted(Accepted(taskID: task.taskID, attempt: task.attempt, duplicate: false)))
            held[task.taskID] = nil
            try greedy.send(.ready(Ready(credit: 1_000_000_000)))
        }
        coordinator.waitUntilExit()
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(finished && coordinator.terminationStatus == 0, "\(text)")
        #expect(most == 2, "the peer never held its bound of 2 tasks at once (at most \(most))")
        let warning = "worker greedy on loopback claims 1000000000 slots; it gets at most 2 (--max-worker-slots)"
        #expect(text.components(separatedBy: warning).count == 2, "not one warning naming the claim and the bound: \(text)")
        #expect(try Journal(directory: harness.run).eventCount("slots-cut") == 1)
        try Self.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }

    /// The issue's poisoned plan: the holder of the dense training answers with the wrong
    /// roles, with its own input as every output, and with weights of another architecture.
    /// Each is an error of that attempt; the Lottery Ticket prune that depends on it runs on
    /// the real weights.
    @Test(.timeLimit(.minutes(10)))
    func wrongOutputsFromTheHolderAreErrorsAndTheTaskRetries() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = #"{"name":"liar","preset":"smoke","seeds":[1],"lotteryRounds":1,"overrides":{"epochs":1}}"#
        let (coordinator, log, endpoint) = try Self.start(harness, sweep: sweep)
        defer { StartedProcesses.stop(coordinator) }

        let liar = try HandWrittenPeer(endpoint: endpoint, name: "liar")
        try liar.send(.ready(Ready(credit: 1)))
        let initialise = try #require(liar.nextTask(seconds: 10), "no θ0 task came")
        #expect(try liar.complete(initialise, harness: harness) == .accepted(Accepted(taskID: initialise.taskID, attempt: 1, duplicate: false)))

        let foreign = harness.directory.appendingPathComponent("foreign.safetensors")
        try Steps.initialWeights(architecture: .init(width: 2, inputChannels: 3, classes: 10), seed: 1, output: foreign)
        let foreignWeights = try Data(contentsOf: foreign)
        let lies: [(String, (String) -> [String: String])] = [
            ("roles [\"initial\"]", { ["initial": $0] }),
            ("metrics", { ["weights": $0, "metrics": $0] }),
            ("shape", { _ in ["weights": ArtifactStore.hash(foreignWeights), "metrics": ArtifactStore.hash(foreignWeights)] }),
        ]
        var denseID: String?, theta0: String?
        for (attempt, (reason, outputs)) in lies.enumerated() {
            try liar.send(.ready(Ready(credit: 1)))
            let dense = try #require(liar.nextTask(seconds: 10), "the dense training did not come back for attempt \(attempt + 1)")
            #expect(dense.attempt == attempt + 1)
            denseID = dense.taskID
            let input = try #require(dense.inputs["initial"])
            theta0 = input
            try liar.upload(foreignWeights)
            try liar.send(.result(TaskResult(taskID: dense.taskID, attempt: dense.attempt, outputs: outputs(input), metrics: "{}")))
            #expect(liar.collect(seconds: 0.5).allSatisfy { if case .accepted = $0 { false } else { true } }, "a lie (\(reason)) was accepted")
            let row = try #require(try Journal(directory: harness.run).task(dense.taskID))
            #expect(row.state == .queued && row.failures == attempt + 1, "the lie (\(reason)) was not an error of the attempt")
        }
        liar.close()
        let text = try Self.finish(harness, coordinator, log: log, endpoint: endpoint)
        for reason in ["have roles [\"initial\"], the step produces [\"metrics\", \"weights\"]", "is not a valid metrics", "has shape"] {
            #expect(text.contains(reason), "the log does not say why a lie was refused (\(reason)): \(text)")
        }
        let journal = try Journal(directory: harness.run)
        let dense = try #require(denseID)
        #expect(try journal.attemptWorkers(dense) == ["liar", "liar", "liar", "honest"])
        let outputs = try JSONDecoder().decode([String: String].self, from: Data(try #require(try journal.task(dense)?.outputs).utf8))
        #expect(outputs["weights"] != nil && outputs["weights"] != theta0, "the dense training was accepted with θ0 as its weights")
        try Self.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }
}
