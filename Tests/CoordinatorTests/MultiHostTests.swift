import Foundation
import TaskRuntime
import Testing
@testable import Coordinator

/// Hosts on one machine: network namespaces joined by veth pairs, made by the test. Only
/// addresses inside these namespaces carry traffic.
struct Namespaces {
    let coordinator: String, hostA: String, hostB: String

    /// Whether this machine lets the test make namespaces (root and iproute2).
    static let available: Bool = {
        let name = "ps-probe-\(getpid())"
        guard (try? Namespaces.ip(["netns", "add", name])) == 0 else { return false }
        _ = try? Namespaces.ip(["netns", "delete", name])
        return true
    }()

    @discardableResult
    static func ip(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Three namespaces: the coordinator's at 10.201.1.1 and 10.201.2.1, host A at 10.201.1.2,
    /// host B at 10.201.2.2, each link a veth pair.
    init() throws {
        let tag = String(getpid() % 100000)
        coordinator = "ps-c-\(tag)"
        hostA = "ps-a-\(tag)"
        hostB = "ps-b-\(tag)"
        for name in [coordinator, hostA, hostB] {
            try Self.require(["netns", "add", name])
            try Self.require(["-n", name, "link", "set", "lo", "up"])
        }
        for (host, net, link) in [(hostA, 1, "psa\(tag)"), (hostB, 2, "psb\(tag)")] {
            try Self.require(["link", "add", link, "netns", coordinator, "type", "veth", "peer", "name", "eth0", "netns", host])
            try Self.require(["-n", coordinator, "addr", "add", "10.201.\(net).1/24", "dev", link])
            try Self.require(["-n", host, "addr", "add", "10.201.\(net).2/24", "dev", "eth0"])
            try Self.require(["-n", coordinator, "link", "set", link, "up"])
            try Self.require(["-n", host, "link", "set", "eth0", "up"])
        }
        linkA = "psa\(tag)"
    }

    /// The coordinator's end of host A's link.
    let linkA: String

    private static func require(_ arguments: [String]) throws {
        let status = try ip(arguments)
        guard status == 0 else { throw SweepError.invalid("ip \(arguments.joined(separator: " ")) failed with status \(status)") }
    }

    /// Takes host A's link down or up.
    func setLinkA(up: Bool) throws { try Self.require(["-n", coordinator, "link", "set", linkA, up ? "up" : "down"]) }

    func remove() {
        for name in [coordinator, hostA, hostB] { _ = try? Self.ip(["netns", "delete", name]) }
    }

    /// Starts `executable` inside namespace `name`, output to `log`.
    func start(in name: String, _ executable: URL, _ arguments: [String], log: URL) throws -> Process {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", name, executable.path] + arguments
        process.standardOutput = try FileHandle(forWritingTo: log)
        process.standardError = process.standardOutput
        try StartedProcesses.run(process)
        return process
    }
}

@Suite struct MultiHostTests {
    /// A smoke sweep across three "hosts"; host A is cut off mid-task and brought back.
    @Test(.enabled(if: Namespaces.available, "network namespaces cannot be created here (needs root and iproute2): the multi-host test is skipped"),
          .timeLimit(.minutes(10)))
    func aCutOffHostsTaskResumesElsewhereAndTheHostRejoins() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let net = try Namespaces()
        defer { net.remove() }
        let keys = harness.directory.appendingPathComponent("keys")
        for name in ["coordinator", "workers"] {
            let result = try CoordinatorProcessTests.run(["keygen", "--out", keys.appendingPathComponent(name).path])
            try #require(result.status == 0, "\(result.errors)")
        }
        let cluster = try harness.file("cluster.json", """
            {"bind": "tcp://0.0.0.0:5555", "heartbeatSeconds": 0.25, "missedHeartbeats": 8,
             "security": {"coordinatorKey": "keys/coordinator.key", "authorizedKeys": "keys/workers.pub"},
             "hosts": [{"name": "host-a", "launcher": "manual"}, {"name": "host-b", "launcher": "manual"}]}
            """)
        let sweep = try harness.file("sweep.json", #"{"name":"hosts","preset":"smoke","seeds":[1,2,3],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":100}}"#)
        let bin = CoordinatorProcessTests.coordinator.deletingLastPathComponent()
        let coordinatorLog = harness.directory.appendingPathComponent("coordinator.log")
        let coordinator = try net.start(in: net.coordinator, bin.appendingPathComponent("coordinator"),
                                        ["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", cluster.path], log: coordinatorLog)
        defer { StartedProcesses.stop(coordinator) }
        var workers: [Process] = []
        defer { workers.forEach(StartedProcesses.stop) }
        for (name, namespace, address) in [("host-a", net.hostA, "10.201.1.1"), ("host-b", net.hostB, "10.201.2.1")] {
            workers.append(try net.start(in: namespace, bin.appendingPathComponent("worker"),
                                         ["--connect", "tcp://\(address):5555", "--name", name, "--threads", "1", "--heartbeat", "0.25",
                                          "--missed-heartbeats", "8", "--server-key", keys.appendingPathComponent("coordinator.pub").path,
                                          "--key", keys.appendingPathComponent("workers.key").path,
                                          "--cache", harness.directory.appendingPathComponent("cache-\(name)").path],
                                         log: harness.directory.appendingPathComponent("\(name).log")))
        }

        // Wait for a training task of host A with a checkpoint, then cut host A off.
        var victim: String?
        try #require(SweepHarness.wait(seconds: 120) {
            guard let journal = try? Journal(directory: harness.run), let rows = try? journal.tasks() else { return false }
            victim = rows.first { row in
                row.state == .running && row.checkpoint != nil && (try? journal.attemptWorkers(row.id).last) == "host-a"
            }?.id
            return victim != nil
        }, "host A never reported a checkpoint")
        let task = try #require(victim)
        try net.setLinkA(up: false)
        let cut = Date()
        let lost = SweepHarness.wait(seconds: 60) { (try? Journal(directory: harness.run).task(task)?.state) != .running }
        let secondsToLoss = Date().timeIntervalSince(cut)
        let resumed = SweepHarness.wait(seconds: 60) {
            (try? Journal(directory: harness.run).runWorkers(task).count) == 2
        }
        let secondsToResume = Date().timeIntervalSince(cut)
        try net.setLinkA(up: true)
        print(String(format: "multi-host: host A cut off; its task back in the queue after %.1f s, resumed on host B after %.1f s (B finished its own task first)",
                     secondsToLoss, secondsToResume))
        #expect(lost)
        #expect(resumed, "the cut-off task never resumed elsewhere")

        coordinator.waitUntilExit()
        let text = try String(contentsOf: coordinatorLog, encoding: .utf8)
        #expect(coordinator.terminationStatus == 0, "\(text)")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        let attempts = try journal.attemptRecords(task)
        #expect(try journal.runWorkers(task) == ["host-a", "host-b"], "attempts: \(attempts)")
        #expect(text.contains("resuming from its checkpoint"))
        let plan = try SweepPlan(try SweepSpec.load(sweep))
        #expect(try journal.results().count == plan.tasks.filter(\.labels.reported).count, "a result was lost or duplicated")
        #expect(text.components(separatedBy: "worker host-a joined").count - 1 >= 2, "host A did not rejoin: \(text)")
        #expect(text.contains("CURVE: encrypted and authenticated"))
    }
}
