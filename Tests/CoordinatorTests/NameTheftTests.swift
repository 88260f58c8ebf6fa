import Foundation
import Protocol
import Testing
@testable import Coordinator

/// A second peer saying `hello` with a running worker's name is refused instead of taking
/// over its session: by its secret on loopback, by its CURVE key under CURVE. The same process
/// reconnecting, and a slot the coordinator relaunched, still take over at once.
@Suite struct NameTheftTests {
    private static func isRefusal(_ message: Message, _ words: String) -> Bool {
        if case .shutdown(let shutdown) = message { shutdown.reason.hasPrefix("refused") && shutdown.reason.contains(words) } else { false }
    }

    @Test(.timeLimit(.minutes(10)))
    func aLiveWorkersNameIsRefusedToAnotherPeerOnLoopback() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = #"{"name":"theft","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":1}}"#
        let (coordinator, log, endpoint) = try HostilePeerTests.start(harness, sweep: sweep)
        defer { StartedProcesses.stop(coordinator) }

        let victim = try HandWrittenPeer(endpoint: endpoint, name: "victim", secret: "victim's own")
        #expect(victim.collect(seconds: 0.5).isEmpty)
        for secret in ["a guess", nil] {
            let thief = try HandWrittenPeer(endpoint: endpoint, name: "victim", secret: secret)
            let answers = thief.collect(seconds: 1)
            #expect(answers.contains { Self.isRefusal($0, "in use by a live session") }, "a thief with secret \(secret ?? "none") was not refused: \(answers)")
            thief.close()
        }
        // The victim was never told to introduce itself again: its session is intact.
        try victim.send(.ready(Ready(credit: 1)))
        let task = try #require(victim.nextTask(seconds: 10), "the victim's session no longer gets tasks")
        #expect(try victim.complete(task, harness: harness) == .accepted(Accepted(taskID: task.taskID, attempt: task.attempt, duplicate: false)))
        // The same process on a new connection (its own secret) takes its session over.
        let reconnected = try HandWrittenPeer(endpoint: endpoint, name: "victim", secret: "victim's own")
        #expect(!reconnected.collect(seconds: 1).contains { if case .shutdown = $0 { true } else { false } })
        victim.close()
        reconnected.close()
        _ = try HostilePeerTests.finish(harness, coordinator, log: log, endpoint: endpoint)
        let journal = try Journal(directory: harness.run)
        #expect(try journal.eventCount("name-refused") == 2)
        #expect(try journal.attemptWorkers(task.taskID) == ["victim"])
        try HostilePeerTests.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }

    @Test(.timeLimit(.minutes(10)))
    func aLaunchedSlotsNameNeedsItsSecretAndARelaunchTakesOver() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = #"{"name":"relaunch","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":40}}"#
        let (coordinator, log, endpoint) = try HostilePeerTests.start(harness, sweep: sweep, fields: #""restarts": 2, "#,
                                                                     hosts: #"[{"name": "localhost", "workers": 1, "threads": 1}]"#)
        defer { StartedProcesses.stop(coordinator) }
        let joined = { (try? String(contentsOf: log, encoding: .utf8))?.components(separatedBy: "worker localhost-w1 joined").count ?? 1 }
        try #require(SweepHarness.wait(seconds: 60) { joined() > 1 }, "the launched worker never joined")

        let impostor = try HandWrittenPeer(endpoint: endpoint, name: "localhost-w1")
        let answers = impostor.collect(seconds: 1)
        #expect(answers.contains { Self.isRefusal($0, "belongs to a slot the coordinator launched") }, "the impostor was not refused: \(answers)")
        impostor.close()

        // Killed while it trains, the slot is relaunched with its secret and takes over its
        // session before the old one falls silent for long enough to be lost.
        try #require(SweepHarness.wait(seconds: 60) { (try? String(contentsOf: log, encoding: .utf8))?.contains("start train") == true },
                     "the training never started")
        let first = try #require(SweepHarness.pid(of: "localhost-w1", in: try String(contentsOf: log, encoding: .utf8)))
        kill(first, SIGKILL)
        coordinator.waitUntilExit()
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")
        #expect(text.contains("restarting it") && text.contains("worker localhost-w1 lost (it restarted)"), "\(text)")
        #expect(joined() == 3, "the relaunched slot did not join exactly once more: \(text)")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.eventCount("name-refused") == 1, "the relaunched slot was refused: \(text)")
        try HostilePeerTests.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }

    @Test(.timeLimit(.minutes(10)))
    func underCurveANameStaysWithTheKeyThatFirstUsedIt() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let keys = harness.directory.appendingPathComponent("keys")
        for name in ["coordinator", "victim", "thief"] {
            let result = try CoordinatorProcessTests.run(["keygen", "--out", keys.appendingPathComponent(name).path])
            try #require(result.status == 0, "\(result.errors)")
        }
        let victimKeys = try CurveKeyPair.read(secretFile: keys.appendingPathComponent("victim.key"))
        let thiefKeys = try CurveKeyPair.read(secretFile: keys.appendingPathComponent("thief.key"))
        let serverKey = try CurveKeyPair.read(secretFile: keys.appendingPathComponent("coordinator.key")).publicKey
        try Data((victimKeys.publicKey + "\n" + thiefKeys.publicKey + "\n").utf8).write(to: keys.appendingPathComponent("authorized"))
        let sweep = #"{"name":"curve-theft","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":1}}"#
        let (coordinator, log, endpoint) = try HostilePeerTests.start(harness, sweep: sweep, fields: """
            "security": {"mode": "curve", "coordinatorKey": "keys/coordinator.key", "authorizedKeys": "keys/authorized"},
            """)
        defer { StartedProcesses.stop(coordinator) }

        let victim = try HandWrittenPeer(endpoint: endpoint, name: "victim", secret: "shared", curve: (victimKeys, serverKey))
        #expect(victim.collect(seconds: 1).isEmpty)
        // Even with the victim's secret, another key cannot speak for the name, alive or lost.
        let thief = try HandWrittenPeer(endpoint: endpoint, name: "victim", secret: "shared", curve: (thiefKeys, serverKey))
        let answers = thief.collect(seconds: 1)
        #expect(answers.contains { Self.isRefusal($0, "belongs to CURVE key \(victimKeys.publicKey)") }, "the thief was not refused: \(answers)")
        thief.close()
        victim.close()
        try #require(SweepHarness.wait(seconds: 30) { (try? Journal(directory: harness.run).eventCount("lost")) ?? 0 >= 1 }, "the victim was never lost")
        let again = try HandWrittenPeer(endpoint: endpoint, name: "victim", secret: "shared", curve: (thiefKeys, serverKey))
        #expect(again.collect(seconds: 1).contains { Self.isRefusal($0, "belongs to CURVE key") }, "the thief took the name of a lost worker")
        again.close()

        _ = try HostilePeerTests.finish(harness, coordinator, log: log, endpoint: endpoint,
                                        arguments: ["--server-key", keys.appendingPathComponent("coordinator.pub").path,
                                                    "--key", keys.appendingPathComponent("victim.key").path])
        let journal = try Journal(directory: harness.run)
        #expect(try journal.eventCount("name-refused") == 2)
        #expect(try journal.events("name-bound").contains { $0["worker"] == "victim" && $0["key"] == victimKeys.publicKey })
        try HostilePeerTests.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }
}
