import Foundation
import Protocol
import Testing
@testable import Coordinator

/// A fleet of simulated workers against the real `coordinator` program (docs/cluster.md,
/// "Fleet simulator"): 100 workers on loopback run a 2,000-task sweep to its end, and every
/// task is accepted exactly once, from its only attempt or, for a backed-up training, one of two.
@Suite(.serialized) struct FleetSimulationTests {
    /// The smoke preset's dense run and one lottery round: four task shapes per seed.
    static func sweep(_ name: String, seeds: [Int]) -> String {
        #"{"name": "\#(name)", "preset": "smoke", "seeds": \#(seeds), "dense": true, "lotteryRounds": 1}"#
    }

    /// A thousand workers connect within a second, at a sweep's start and after a restart: the
    /// coordinator's socket queues them all for acceptance (with ZeroMQ's default of 100, the
    /// kernel dropped the handshakes beyond it and 620 of 1,000 simulated workers joined 1–2 s
    /// late, their TCP retrying a second later).
    @Test func theCoordinatorQueuesAThousandConnectionsAtOnce() throws {
        let (socket, endpoint) = try SweepCoordinator.listen(on: "tcp://127.0.0.1:*", curve: nil)
        defer { socket.close() }
        let backlog = try socket.get(ZMQSocket.backlog)
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && backlog >= 1000)
    }

    @Test(.timeLimit(.minutes(10))) func aHundredWorkersRunTwoThousandTasksEachExactlyOnce() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        // The template: one seed run by real workers, whose outputs the simulated tasks return.
        let template = harness.directory.appendingPathComponent("template")
        let made = try CoordinatorProcessTests.run(["--sweep", try harness.file("template.json", Self.sweep("template", seeds: [42])).path,
                                                    "--run-dir", template.path, "--cluster", try harness.cluster(workers: 2).path])
        #expect(made.status == 0, "\(made.errors)")
        let shapes = try FleetTemplate(runDirectory: template)
        let perSeed = try Journal(directory: template).tasks().count
        let seeds = 2000 / perSeed
        let cluster = try harness.file("fleet-cluster.json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 1, "missedHeartbeats": 60,
             "hosts": [{"name": "fleet", "launcher": "manual", "workers": 100}]}
            """)
        let output = harness.directory.appendingPathComponent("coordinator.log")
        let coordinator = try harness.start(["--sweep", try harness.file("fleet.json", Self.sweep("fleet", seeds: Array(1...seeds))).path,
                                             "--run-dir", harness.run.path, "--cluster", cluster.path, "--max-worker-slots", "1",
                                             "--log-level", "warning"], output: output)
        defer { StartedProcesses.stop(coordinator) }
        let endpointFile = harness.run.appendingPathComponent("coordinator.endpoint")
        #expect(SweepHarness.wait(seconds: 60) { FileManager.default.fileExists(atPath: endpointFile.path) })
        let endpoint = try String(contentsOf: endpointFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // Two simulator threads of 50 workers, steps about a tenth of a second. Liveness is
        // loose (60 s): CI runs this beside every other end-to-end test on two cores, and a
        // worker that gave the coordinator up would rightly run its task a second time.
        let results = Locked<[FleetStats]>([])
        let threads = (0..<2).map { index in
            Thread {
                let options = FleetSimulator.Options(endpoint: endpoint, workers: 50, namePrefix: "t\(index)", heartbeatSeconds: 1, missedHeartbeats: 60,
                                                     timeScale: 0.1, spread: 0.3)
                let stats = (try? FleetSimulator(options: options, template: shapes).run()) ?? FleetStats()
                results.with { $0.append(stats) }
            }
        }
        threads.forEach { $0.start() }
        #expect(SweepHarness.wait(seconds: 240) { results.with { $0.count } == 2 })
        coordinator.waitUntilExit()
        #expect(coordinator.terminationStatus == 0, "\((try? String(contentsOf: output, encoding: .utf8)) ?? "")")
        var fleet = FleetStats()
        for stats in results.with({ $0 }) { fleet.merge(stats) }
        let journal = try Journal(directory: harness.run)
        let tasks = try journal.tasks()
        #expect(tasks.count == seeds * perSeed)
        #expect(tasks.allSatisfy { $0.state == .done })
        #expect(try journal.eventCount("done") == tasks.count)
        // A second attempt is only ever a backup copy of a training expected to finish last
        // (the first result wins, the other copy is cancelled): no task ran again for a lost worker.
        // A copy that finishes before its cancel reaches it is answered as a duplicate, and
        // dropped: on a loaded machine that happens (1 of 8 backups in one run).
        let backups = try journal.eventCount("backup")
        #expect(fleet.done == tasks.count && fleet.duplicates <= backups && fleet.unknownTasks == 0)
        #expect(tasks.allSatisfy { $0.attempts <= 2 } && tasks.filter { $0.attempts > 1 }.count == backups && fleet.startedTwice == backups)
        print("fleet of 100 simulated workers, \(tasks.count) tasks: \(fleet.summary)")
    }
}
