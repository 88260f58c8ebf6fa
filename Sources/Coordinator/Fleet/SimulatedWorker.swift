import BuildStamp
import Foundation
import Protocol
import TaskRuntime

/// One simulated worker of one slot, as a state machine without a socket: what it says is
/// returned as actions for `FleetSimulator` to carry out. It behaves as `WorkerAgent` does on
/// the wire (hello, credit, artifact fetches in chunks, a progress and checkpoint upload per
/// epoch, outputs uploaded before the result, results kept until accepted and sent again
/// after a rejoin, heartbeats when silent) but "trains" by waiting a drawn time and returns
/// the template's real outputs.
struct SimulatedWorker {
    /// What the worker does next on its socket.
    enum Action: Equatable {
        case send(Message)
        /// Close the socket and open a new one to the same endpoint (the hello follows).
        case reconnect
        /// Close the socket for good.
        case close
    }

    /// A task being fetched or run.
    private struct Job {
        var assignment: TaskAssignment
        var entry: FleetTemplate.Entry
        var firstEpoch: Int, lastEpoch: Int
        /// Inputs still to fetch, the one arriving now and its bytes so far.
        var missing: [String]
        var received = 0
        /// When the step started and how long it takes; epochs reported so far.
        var started = 0.0, seconds = 0.0, reported = 0
    }

    private enum Phase {
        /// Waiting for a task since `since` (credit sent then).
        case idle(since: Double)
        case working(Job)
        /// The coordinator has not answered the hello yet, or the worker is done.
        case joining, finished
    }

    let name: String
    private let secret: String
    private let heartbeat: Double, deadAfter: Double
    private let timeScale: Double, spread: Double
    private let fault: FleetFaults.Fault
    private let template: FleetTemplate
    private var phase = Phase.joining
    private var fetched: Set<String> = []
    private var pending: [String: (result: TaskResult, sent: Double)] = [:]
    private var lastHeard: Double, lastSent: Double
    /// When the last hello went out, until the coordinator's first other message answers it
    /// (a request to rejoin before then was for a message sent before the hello).
    private var introducedAt: Double?
    private var faultActed = false, silent = false
    private let start: Double
    /// What this worker measured.
    private(set) var stats = FleetStats()

    init(name: String, template: FleetTemplate, heartbeat: Double, missedHeartbeats: Int, timeScale: Double, spread: Double,
         fault: FleetFaults.Fault, now: Double) {
        self.name = name
        secret = UUID().uuidString
        self.heartbeat = heartbeat
        deadAfter = heartbeat * Double(missedHeartbeats)
        self.timeScale = timeScale
        self.spread = spread
        self.fault = fault
        self.template = template
        lastHeard = now
        lastSent = now
        start = now
    }

    /// Whether the worker was told to stop, or its fault ended it.
    var isFinished: Bool { if case .finished = phase { true } else { false } }

    /// The hello (naming the task it runs and the results not yet accepted) and what a new
    /// connection resends: those results, and credit when idle.
    mutating func introduce(now: Double) -> [Action] {
        var held = pending.keys.sorted()
        if case .working(let job) = phase, pending[job.assignment.taskID] == nil { held.insert(job.assignment.taskID, at: 0) }
        lastHeard = now
        introducedAt = now
        var actions: [Action] = [.send(.hello(Hello(worker: name, host: "fleet-sim", cores: 1, threads: 1, blasCore: "none",
                                                    version: CodeVersion.current, running: held, slots: 1, device: "simulated",
                                                    secret: secret, build: BuildInfo.current.identifier)))]
        for (task, delivery) in pending.sorted(by: { $0.key < $1.key }) {
            actions += deliver(delivery.result)
            pending[task]?.sent = now
        }
        // A fetch in flight on the old connection is asked again on this one.
        if case .working(let job) = phase, let hash = job.missing.first {
            actions.append(.send(.artifactGet(ArtifactRequest(hash: hash, offset: job.received, length: ArtifactStore.chunkSize))))
        }
        if case .joining = phase { phase = .idle(since: now) }
        if case .idle = phase { phase = .idle(since: now); actions.append(.send(.ready(Ready(credit: 1)))) }
        return stamped(actions, now)
    }

    /// Handles one message from the coordinator.
    mutating func receive(_ message: Message, now: Double) -> [Action] {
        guard !silent else { return [] }
        stats.noteGap(now - lastHeard, heartbeat: heartbeat)
        lastHeard = now
        if case .shutdown = message {} else { introducedAt = nil }
        var actions: [Action] = []
        switch message {
        case .task(let assignment):
            if case .idle(let since) = phase { stats.dispatches.append(FleetStats.Dispatch(task: assignment.taskID, asked: since, received: now)) }
            stats.started[assignment.taskID, default: 0] += 1
            actions = begin(assignment, now: now)
        case .artifactChunk(let chunk, let bytes):
            actions = arrived(chunk, bytes.count, now: now)
        case .accepted(let accepted):
            if let delivery = pending.removeValue(forKey: accepted.taskID) { stats.intake.append(now - delivery.sent) }
            if accepted.duplicate { stats.duplicates += 1 } else { stats.done += 1 }
        case .cancel(let cancel):
            pending[cancel.taskID] = nil
            if case .working(let job) = phase, job.assignment.taskID == cancel.taskID {
                stats.cancelled += 1
                actions = idle(now)
            }
        case .shutdown(let shutdown):
            if shutdown.rejoin {
                // As `WorkerAgent` does: one hello per rejoin, not one per request queued before it.
                if let introduced = introducedAt, now - introduced < deadAfter { return [] }
                return introduce(now: now)
            }
            phase = .finished
            return [.close]
        case .heartbeat, .hello, .ready, .progress, .artifactGet, .result, .error, .log:
            break
        }
        return stamped(actions, now)
    }

    /// What time alone brings: the fault, epochs and the end of a step, a heartbeat when
    /// silent, and a new connection when the coordinator has been silent too long.
    mutating func tick(now: Double) -> [Action] {
        if isFinished || silent { return [] }
        if !faultActed {
            switch fault {
            case .killed(let at) where now - start >= at:
                faultActed = true
                stats.faults += 1
                phase = .finished
                return [.close]
            case .silent(let at) where now - start >= at:
                faultActed = true
                stats.faults += 1
                silent = true
                return []
            case .rejoining(let at) where now - start >= at:
                faultActed = true
                stats.faults += 1
                return [.reconnect] + introduce(now: now)
            default: break
            }
        }
        if now - lastHeard > deadAfter {
            stats.reconnects += 1
            return [.reconnect] + introduce(now: now)
        }
        var actions: [Action] = []
        if case .working(var job) = phase, job.missing.isEmpty {
            let perEpoch = job.seconds / Double(max(1, job.lastEpoch - job.firstEpoch))
            while job.firstEpoch + job.reported < job.lastEpoch, now >= job.started + perEpoch * Double(job.reported + 1) {
                job.reported += 1
                actions += epoch(job, number: job.firstEpoch + job.reported, seconds: perEpoch)
            }
            phase = .working(job)
            if now >= job.started + job.seconds {
                let times = String(decoding: (try? JSONEncoder().encode(StepTimes(stepSeconds: job.seconds))) ?? Data(), as: UTF8.self)
                let result = TaskResult(taskID: job.assignment.taskID, attempt: job.assignment.attempt, outputs: job.entry.outputs, metrics: times)
                pending[result.taskID] = (result, now)
                actions += deliver(result) + idle(now)
            }
        }
        if actions.isEmpty && now - lastSent >= heartbeat { actions.append(.send(.heartbeat)) }
        return stamped(actions, now)
    }

    private mutating func stamped(_ actions: [Action], _ now: Double) -> [Action] {
        if actions.contains(where: { if case .send = $0 { true } else { false } }) { lastSent = now }
        return actions
    }

    private mutating func idle(_ now: Double) -> [Action] {
        phase = .idle(since: now)
        return [.send(.ready(Ready(credit: 1)))]
    }

    private mutating func begin(_ assignment: TaskAssignment, now: Double) -> [Action] {
        guard let spec = try? JSONDecoder().decode(TaskSpec.self, from: Data(assignment.spec.utf8)),
              let entry = template.entries[FleetTemplate.key(spec)] else {
            stats.unknownTasks += 1
            phase = .working(Job(assignment: assignment, entry: FleetTemplate.Entry(outputs: [:], checkpoint: nil, seconds: 0),
                                 firstEpoch: 0, lastEpoch: 0, missing: []))
            return [.send(.error(TaskFailure(taskID: assignment.taskID, attempt: assignment.attempt,
                                             message: "the fleet template has no task of the shape \(assignment.taskID.prefix(12))")))] + idle(now)
        }
        let (first, last) = if case .train(let config) = spec.step { (config.startEpoch, config.lastEpoch) } else { (0, 0) }
        var seconds = entry.seconds * timeScale * exp(spread * Self.normal())
        if case .slow(let factor) = fault { seconds *= factor }
        let missing = Set(assignment.inputs.values).subtracting(fetched).sorted()
        var job = Job(assignment: assignment, entry: entry, firstEpoch: first, lastEpoch: last, missing: missing, started: now, seconds: seconds)
        job.received = 0
        phase = .working(job)
        return missing.first.map { [.send(.artifactGet(ArtifactRequest(hash: $0, offset: 0, length: ArtifactStore.chunkSize)))] } ?? []
    }

    private mutating func arrived(_ chunk: ArtifactChunk, _ count: Int, now: Double) -> [Action] {
        guard case .working(var job) = phase, let hash = job.missing.first, chunk.hash == hash, chunk.offset == job.received else { return [] }
        job.received += count
        if chunk.total == 0 { stats.missingArtifacts += 1 }
        if job.received >= chunk.total {
            fetched.insert(hash)
            job.missing.removeFirst()
            job.received = 0
            job.started = now
        }
        phase = .working(job)
        guard let next = job.missing.first else { return [] }
        return [.send(.artifactGet(ArtifactRequest(hash: next, offset: job.received, length: ArtifactStore.chunkSize)))]
    }

    private func epoch(_ job: Job, number: Int, seconds: Double) -> [Action] {
        let uploads = job.entry.checkpoint.map(upload) ?? []
        return uploads + [.send(.progress(Protocol.Progress(taskID: job.assignment.taskID, attempt: job.assignment.attempt, epoch: number,
                                                            epochs: job.lastEpoch, metrics: ["seconds": seconds, "trainLoss": 1, "testAccuracy": 0.5],
                                                            checkpoint: job.entry.checkpoint)))]
    }

    private func deliver(_ result: TaskResult) -> [Action] {
        result.outputs.values.sorted().flatMap(upload) + [.send(.result(result))]
    }

    /// An artifact of the template in chunks, as `WorkerAgent` uploads one.
    private func upload(_ hash: String) -> [Action] {
        guard let data = template.artifacts[hash] else { return [] }
        var actions: [Action] = [], offset = 0
        repeat {
            let end = min(data.count, offset + ArtifactStore.chunkSize)
            actions.append(.send(.artifactChunk(ArtifactChunk(hash: hash, offset: offset, total: data.count), data.subdata(in: offset..<end))))
            offset = end
        } while offset < data.count
        return actions
    }

    /// A standard normal draw (Box–Muller).
    private static func normal() -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1), v = Double.random(in: 0..<1)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}
