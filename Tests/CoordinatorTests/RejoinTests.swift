import BuildStamp
import Foundation
import Protocol
import TaskRuntime
import Testing
@testable import Coordinator

/// A worker asked to rejoin introduces itself once, and a hello that crosses a task on the
/// same connection does not lose it. After a coordinator's restart both happened at 1,000
/// workers: each message a worker had queued while the coordinator was away drew its own
/// request to rejoin, each request its own hello, and the second hello, not naming the task
/// the first session was just given, took it back as lost and gave it to another worker
/// while the first still ran it (docs/fleet-scale.md, "Restart").
@Suite struct RejoinTests {
    private static func hello(_ name: String, secret: String) -> Message {
        .hello(Hello(worker: name, host: "loopback", cores: 1, threads: 1, blasCore: "none", version: CodeVersion.current,
                     slots: 1, secret: secret, build: BuildInfo.current.identifier))
    }

    @Test(.timeLimit(.minutes(10)))
    func aHelloThatCrossesATaskOnTheSameConnectionKeepsIt() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        // Only the θ0 initialisation is runnable at first: one task to hand out.
        let sweep = #"{"name":"crossing","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":1}}"#
        let (coordinator, log, endpoint) = try HostilePeerTests.start(harness, sweep: sweep,
                                                                     hosts: #"[{"name": "remote", "launcher": "manual", "workers": 2}]"#)
        defer { StartedProcesses.stop(coordinator) }

        let first = try HandWrittenPeer(endpoint: endpoint, name: "first", secret: "first's own")
        try first.send(.ready(Ready(credit: 1)))
        // The task goes out to `first`, which does not read it yet: its next hello, on the
        // same connection, is sent before the task arrives and cannot name it.
        Thread.sleep(forTimeInterval: 1)
        let second = try HandWrittenPeer(endpoint: endpoint, name: "second", secret: "second's own")
        try second.send(.ready(Ready(credit: 1)))
        #expect(second.collect(seconds: 1).isEmpty, "a second task was runnable: the test proves nothing")
        try first.send(Self.hello("first", secret: "first's own"))
        let handedAgain = second.collect(seconds: 2).compactMap { message -> TaskAssignment? in
            if case .task(let task) = message { task } else { nil }
        }
        #expect(handedAgain.isEmpty, "the task crossed by the hello went to another worker: \(handedAgain.map(\.taskID))")
        let task = try #require(first.nextTask(seconds: 10), "the task sent before the hello never arrived")
        #expect(try first.complete(task, harness: harness) == .accepted(Accepted(taskID: task.taskID, attempt: task.attempt, duplicate: false)),
                "the result of the task the worker was given was not accepted")
        first.close()
        second.close()
        _ = try HostilePeerTests.finish(harness, coordinator, log: log, endpoint: endpoint)
        let journal = try Journal(directory: harness.run)
        #expect(try journal.attemptWorkers(task.taskID) == ["first"])
        try HostilePeerTests.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }

    /// A real worker process against a hand-written coordinator: requests to rejoin that come
    /// before the coordinator answered the hello draw no hello; the first one after draws one.
    @Test(.timeLimit(.minutes(10)))
    func aWorkerIntroducesItselfOncePerRejoin() throws {
        let router = try ZMQSocket(.router)
        defer { router.close() }
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let worker = Process()
        worker.executableURL = CoordinatorProcessTests.coordinator.deletingLastPathComponent().appendingPathComponent("worker")
        worker.arguments = ["--connect", endpoint, "--name", "once", "--threads", "1", "--heartbeat", "0.25", "--missed-heartbeats", "16",
                            "--cache", directory.appendingPathComponent("cache").path]
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try StartedProcesses.run(worker)
        defer { StartedProcesses.stop(worker) }

        var peer: Data?
        /// The hellos that arrive within `seconds` (until the first, with `first`).
        func hellos(within seconds: Double, first: Bool = false) throws -> Int {
            let deadline = Date().addingTimeInterval(seconds)
            var count = 0
            while Date() < deadline && !(first && count > 0) {
                guard try poll([router], eventDescriptor: nil, milliseconds: 20).readable[0] else { continue }
                while let frames = try router.receive(), frames.count > 1 {
                    peer = frames[0]
                    if case .hello = try Wire.decode(Array(frames.dropFirst())) { count += 1 }
                }
            }
            return count
        }
        let rejoin = Message.shutdown(Shutdown(reason: "the coordinator does not know this worker; introduce yourself again", rejoin: true))
        #expect(try hellos(within: 30, first: true) == 1)
        let connection = try #require(peer, "the worker never said hello")
        // Three requests, each answering something the worker sent before its hello, spaced
        // wider than the worker's supervisor polls (50 ms).
        for _ in 0..<3 {
            _ = try router.send([connection] + Wire.encode(rejoin))
            #expect(try hellos(within: 0.3) == 0, "a request to rejoin before the hello's answer drew another hello")
        }
        // The hello's answer, then a request: that one is new.
        _ = try router.send([connection] + Wire.encode(.heartbeat))
        _ = try router.send([connection] + Wire.encode(rejoin))
        #expect(try hellos(within: 2) == 1)
    }
}
