import BuildStamp
import Foundation
import Protocol
@testable import Coordinator
import TaskRuntime

/// A peer that speaks the wire protocol by hand (a DEALER on loopback), as a broken or
/// hostile worker could: it says `hello`, then only what the test makes it say, answering
/// heartbeats while it listens so the coordinator keeps it.
final class HandWrittenPeer {
    private let socket: ZMQSocket
    private let name: String
    /// Messages that came while `complete` waited for its `accepted`, for `next` to return first.
    private var unread: [Message] = []

    /// Connects to `endpoint` (a CURVE client with `curve`) and introduces itself as `name`,
    /// a worker of `slots` slots presenting `secret`, of `build` (this test build's by default).
    init(endpoint: String, name: String, slots: Int = 1, secret: String? = nil,
         curve: (keys: CurveKeyPair, serverKey: String)? = nil, build: String = BuildInfo.current.identifier) throws {
        socket = try ZMQSocket(.dealer)
        if let curve { try socket.makeCurveClient(curve.keys, serverKey: curve.serverKey) }
        try socket.connect(endpoint)
        self.name = name
        try send(.hello(Hello(worker: name, host: "loopback", cores: 1, threads: 1, blasCore: "none",
                              version: CodeVersion.current, slots: slots, secret: secret, build: build)))
    }

    func close() { socket.close() }

    func send(_ message: Message) throws { try sendRaw(Wire.encode(message)) }

    /// Sends `frames` as one message, whatever they hold.
    func sendRaw(_ frames: [Data]) throws { try socket.send(frames, dontWait: false) }

    /// Uploads `data` as one chunk under its own hash.
    func upload(_ data: Data) throws {
        try send(.artifactChunk(ArtifactChunk(hash: ArtifactStore.hash(data), offset: 0, total: data.count), data))
    }

    /// Every message other than heartbeats that arrives within `seconds`.
    func collect(seconds: Double) -> [Message] {
        let deadline = Date().addingTimeInterval(seconds)
        var messages: [Message] = []
        while let message = next(until: deadline) { messages.append(message) }
        return messages
    }

    /// The next task assigned to this peer within `seconds`.
    func nextTask(seconds: Double) -> TaskAssignment? {
        let deadline = Date().addingTimeInterval(seconds)
        while let message = next(until: deadline) { if case .task(let task) = message { return task } }
        return nil
    }

    /// Runs `task` honestly in this process (its inputs read from the coordinator's store on
    /// the same disk), uploads the outputs, sends the result and returns the coordinator's answer.
    func complete(_ task: TaskAssignment, harness: SweepHarness) throws -> Message? {
        let spec = try JSONDecoder().decode(TaskSpec.self, from: Data(task.spec.utf8))
        let cache = harness.directory.appendingPathComponent("peer-\(name)")
        let store = try ArtifactStore(runDirectory: cache)
        let coordinatorStore = try ArtifactStore(runDirectory: harness.run)
        for hash in task.inputs.values { try store.put(try coordinatorStore.data(hash)) }
        let output = try StepRunner(store: store, scratch: cache.appendingPathComponent("scratch")).run(spec, inputs: task.inputs)
        for hash in output.artifacts.values { try upload(try store.data(hash)) }
        try send(.result(TaskResult(taskID: task.taskID, attempt: task.attempt, outputs: output.artifacts, metrics: "{}")))
        let deadline = Date().addingTimeInterval(10)
        // Other messages are kept for `next`, after it: `next` returns `unread` first, so
        // keeping them there at once would return the same message here forever.
        var other: [Message] = []
        defer { unread += other }
        while let message = next(until: deadline) {
            if case .accepted = message { return message }
            other.append(message)
        }
        return nil
    }

    /// The next message before `deadline`, answering (and skipping) heartbeats.
    private func next(until deadline: Date) -> Message? {
        if !unread.isEmpty { return unread.removeFirst() }
        while Date() < deadline {
            guard (try? poll([socket], eventDescriptor: nil, milliseconds: 50).readable.first) == true,
                  let frames = try? socket.receive(), let message = try? Wire.decode(frames) else { continue }
            guard message != .heartbeat else {
                try? send(.heartbeat)
                continue
            }
            return message
        }
        return nil
    }
}
