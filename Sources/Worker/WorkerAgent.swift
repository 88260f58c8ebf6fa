import BuildStamp
import Foundation
import Logging
import Model
import Protocol
import SweepLog
import TaskRuntime

/// A worker in a sweep. Three threads: the socket's (messages and heartbeats, in
/// `Connection`), the task thread (fetches inputs, runs the step, uploads checkpoints and
/// outputs), and the caller's, which supervises: it replaces a dead connection after a
/// back-off, introduces the worker again when the coordinator asks, and returns when told
/// to shut down. Results are kept until the coordinator acknowledges them and are sent again
/// after every reconnect, so none is lost to a broken link or a restarted coordinator.
public final class WorkerAgent: Sendable {
    private struct State: Sendable {
        var connection: Connection?
        var queue: [TaskAssignment] = []
        var current: String?
        var cancelled: Set<String> = []
        var pending: [String: TaskResult] = [:]
        var chunks: [(ArtifactChunk, Data)] = []
        var heard = false
        var rejoin = false
        /// When the last hello went out, until the coordinator's first other message (its
        /// answer to the hello) arrives: see `handle`'s rejoin.
        var introducedAt: Date?
        var shutdown: Shutdown?
        var warnedHandshake = false
    }

    private let options: WorkerOptions
    private let state = Locked(State())
    private let taskArrived = DispatchSemaphore(value: 0)
    private let chunkArrived = DispatchSemaphore(value: 0)
    private let store: ArtifactStore
    private let runner: StepRunner
    private let log: Logger
    private let relay: LogRelay
    private let secret = SlotSecret.ofThisProcess()

    /// A worker with `options`; its log lines go to `sink` under its name, and to the
    /// coordinator once the coordinator takes them.
    public init(options: WorkerOptions, sink: LogSink) throws {
        self.options = options
        let relay = LogRelay()
        self.relay = relay
        let log = Logger(label: options.name) { label in ForwardingLogHandler(local: SweepLogHandler(label: label, sink: sink), relay: relay) }
        self.log = log
        // The GPU path's debug lines (algorithms) and warnings (a failed graph capture) go
        // where this worker's own lines go, at their levels.
        if case .cuda(let gpu) = options.device { gpu.logger = log }
        store = try ArtifactStore(runDirectory: options.cache)
        // Scratch per process: a restarted worker must not share run folders with a
        // predecessor that may still be winding down.
        runner = StepRunner(store: store, scratch: options.cache.appendingPathComponent("scratch").appendingPathComponent(String(getpid())),
                            device: options.device)
    }

    /// Works until the coordinator says the sweep is over (returns 0) or refuses this worker
    /// (its key, its version, or after quarantine: returns 3). With `exitWithParent` the
    /// process exits when its parent does.
    public func run() -> Int32 {
        if options.exitWithParent { watchParent() }
        let taskThread = Thread { [self] in
            while true { runNextTask() }
        }
        taskThread.name = "prunesweep-task"
        taskThread.stackSize = 8 << 20
        taskThread.start()
        var backoff = Backoff(initial: min(1, options.heartbeatSeconds), maximum: 32)
        connect()
        while true {
            usleep(50_000)
            let (connection, heard, rejoin, shutdown) = state.with { s in
                defer { s.heard = false; s.rejoin = false }
                return (s.connection, s.heard, s.rejoin, s.shutdown)
            }
            if let shutdown {
                log.log(level: shutdown.reason.hasPrefix("refused") ? .error : .info, "shutdown: \(shutdown.reason)")
                connection?.close()
                return shutdown.reason.hasPrefix("refused") ? 3 : 0
            }
            if heard { backoff.reset() }
            if rejoin { introduce() }
            guard let connection else {
                Thread.sleep(forTimeInterval: backoff.next())
                connect()
                continue
            }
            if connection.isDead {
                let wait = backoff.next()
                log.warning("the coordinator has been silent for \(options.deadAfterSeconds) s; reconnecting in \(wait) s")
                state.with { $0.connection = nil }
                connection.close()
                Thread.sleep(forTimeInterval: wait)
                connect()
            }
        }
    }

    /// A locally launched worker ends with its coordinator at once, whatever its threads are
    /// doing (a restarted coordinator starts its own workers on the same tasks).
    private func watchParent() {
        let parent = getppid()
        let watcher = Thread { [log] in
            while getppid() == parent { usleep(50_000) }
            log.notice("the coordinator that started this worker has exited; exiting too")
            exit(0)
        }
        watcher.name = "prunesweep-parent-watch"
        watcher.start()
    }

    private func connect() {
        // A new link may lead to another coordinator: lines stay local until its first task
        // says it takes them.
        relay.connect(nil)
        do {
            let connection = try Connection(options: options, onMessage: { [self] in handle($0) },
                                            onHandshake: { [self] in handshake($0) }, log: { [log] line in log.warning("\(line)") })
            state.with { $0.connection = connection }
            introduce()
        } catch {
            log.error("cannot connect to \(options.endpoint): \(error)")
        }
    }

    /// Hello (with the task still running, those queued behind it, and those with results not
    /// yet acknowledged, so a restarted coordinator adopts them: it takes results only from the
    /// worker holding the task), those results, and credit when idle. One task thread: one slot.
    private func introduce() {
        let (current, queued, pending, idle) = state.with { s in
            s.introducedAt = Date()
            return (s.current, s.queue.map(\.taskID), Array(s.pending.values), s.current == nil && s.queue.isEmpty)
        }
        var held = (current.map { [$0] } ?? []) + queued
        held += pending.map(\.taskID).filter { !held.contains($0) }
        send(.hello(Hello(worker: options.name, host: ProcessInfo.processInfo.hostName,
                          cores: ProcessInfo.processInfo.activeProcessorCount, threads: options.threads,
                          blasCore: BLAS.engineSummary, version: CodeVersion.current, running: held,
                          gpu: ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"], group: options.group, slots: 1,
                          device: options.deviceDescription, precision: options.device.effectivePrecision(nil).rawValue,
                          secret: secret, build: BuildInfo.current.identifier)))
        for result in pending { deliver(result) }
        if idle { send(.ready(Ready(credit: 1))) }
        log.info("connecting to \(options.endpoint) as \(options.name)")
    }

    private func send(_ message: Message) {
        state.with { $0.connection }?.send(message)
    }

    /// A refused handshake is final: the coordinator will refuse the same key again.
    private func handshake(_ event: HandshakeEvent) {
        let key = options.curve?.keys.publicKey
        let reason: String
        switch event {
        case .succeeded: return
        case .failed(let errno):
            // The coordinator hangs up on a client whose server key is wrong; ZeroMQ retries.
            guard options.curve != nil, state.with({ s in defer { s.warnedHandshake = true }; return !s.warnedHandshake }) else { return }
            return log.warning("the CURVE handshake with the coordinator failed (errno \(errno)); retrying. If this repeats, --server-key is not the coordinator's public key")
        case .refused(let status):
            reason = "refused: the coordinator does not authorise this worker's key \(key ?? "(none)") (ZAP status \(status)); add it to the file named by security.authorizedKeys in its cluster.json"
        case .protocolError(let code):
            reason = key == nil
                ? "refused: the coordinator speaks CURVE and this worker has no keys (ZMTP error 0x\(String(code, radix: 16))); pass --server-key and --key"
                : "refused: the CURVE handshake failed (ZMTP error 0x\(String(code, radix: 16))); is --server-key the coordinator's public key?"
        }
        state.with { $0.shutdown = Shutdown(reason: reason) }
    }

    /// Runs on the socket's thread: only queues and flags, never blocks.
    private func handle(_ message: Message) {
        state.with { s in
            s.heard = true
            if case .shutdown = message {} else { s.introducedAt = nil }
        }
        switch message {
        case .task(let assignment):
            if assignment.takesLogs == true { relay.connect { [self] line in send(.log(line)) } }
            state.with { $0.queue.append(assignment) }
            taskArrived.signal()
        case .artifactChunk(let chunk, let bytes):
            state.with { $0.chunks.append((chunk, bytes)) }
            chunkArrived.signal()
        case .accepted(let accepted):
            state.with { _ = $0.pending.removeValue(forKey: accepted.taskID) }
            if accepted.duplicate { log.notice("the coordinator already had a result for \(accepted.taskID.prefix(12)); it dropped this one") }
        case .cancel(let cancel):
            state.with { s in
                s.cancelled.insert(cancel.taskID)
                s.queue.removeAll { $0.taskID == cancel.taskID }
                // The coordinator will not take a result of it from this worker any more.
                s.pending[cancel.taskID] = nil
            }
            log.notice("cancelled \(cancel.taskID.prefix(12)): \(cancel.reason)")
        case .shutdown(let shutdown) where shutdown.rejoin:
            // The coordinator answers every message of a connection it does not know with a
            // request to rejoin, so after a restart a worker whose messages queued up meanwhile
            // gets one per message. The coordinator answers each hello, and one connection
            // keeps its order: a request that comes before that answer was for a message sent
            // before the hello, and introducing again would only repeat it. One that comes
            // later, or a liveness window after a hello that got no answer (the coordinator
            // lost it), is new.
            let deadAfter = options.deadAfterSeconds
            state.with { s in
                if let introduced = s.introducedAt, Date().timeIntervalSince(introduced) < deadAfter { return }
                s.rejoin = true
            }
        case .shutdown(let shutdown):
            state.with { $0.shutdown = shutdown }
        case .heartbeat:
            break
        case .hello, .ready, .progress, .artifactGet, .result, .error, .log:
            log.warning("ignored a \(message.type) message, which only workers send")
        }
    }

    // MARK: the task thread

    private func runNextTask() {
        taskArrived.wait()
        guard let assignment = state.with({ s -> TaskAssignment? in
            guard !s.queue.isEmpty else { return nil }
            let next = s.queue.removeFirst()
            s.current = next.taskID
            return next
        }) else { return }
        execute(assignment)
        state.with { s in
            s.current = nil
            s.cancelled.remove(assignment.taskID)
        }
        send(.ready(Ready(credit: 1)))
    }

    private func execute(_ assignment: TaskAssignment) {
        let id = assignment.taskID
        var log = self.log
        log[metadataKey: ForwardingLogHandler.taskIDKey] = "\(id)"
        do {
            let task = try JSONDecoder().decode(TaskSpec.self, from: Data(assignment.spec.utf8))
            log[metadataKey: SweepLogHandler.taskKey] = "\(task.summary)"
            guard task.id == id else { throw SweepError.invalid("task \(id.prefix(12))'s specification hashes to \(task.id.prefix(12))") }
            var inputs = assignment.inputs
            let checkpoint = inputs.removeValue(forKey: "checkpoint")
            for hash in Set(inputs.values).union(checkpoint.map { [$0] } ?? []) { try fetch(hash) }
            let dataDirectory = try dataset(assignment.datasetFiles ?? [:])
            log.debug("start \(task.summary) (attempt \(assignment.attempt))\(checkpoint == nil ? "" : ", resuming from the coordinator's checkpoint")")
            let epochs = if case .train(let config) = task.step { config.lastEpoch } else { 0 }
            let clock = Date()
            let output = try runner.run(task, inputs: inputs, checkpoint: checkpoint, dataDirectory: dataDirectory, onEpoch: { [self] metrics, checkpoint in
                upload(checkpoint)
                send(.progress(Protocol.Progress(taskID: id, attempt: assignment.attempt, epoch: metrics.epoch, epochs: epochs,
                                        metrics: ["trainLoss": metrics.trainLoss, "testAccuracy": metrics.testAccuracy,
                                                  "seconds": metrics.seconds, "imagesPerSecond": metrics.imagesPerSecond],
                                        checkpoint: checkpoint)))
            }, isCancelled: { [self] in state.with { $0.cancelled.contains(id) } }, log: { [log] line in log.debug("\(line)") })
            let times = String(decoding: try JSONEncoder().encode(StepTimes(stepSeconds: Date().timeIntervalSince(clock))), as: UTF8.self)
            let result = TaskResult(taskID: id, attempt: assignment.attempt, outputs: output.artifacts, metrics: times)
            state.with { $0.pending[id] = result }
            deliver(result)
            log.debug("done \(task.summary) in \(String(format: "%.1f", Date().timeIntervalSince(clock))) s")
        } catch SweepError.cancelled {
            log.notice("stopped \(id.prefix(12)) at the coordinator's request")
        } catch {
            log.error("failed \(id.prefix(12)): \(error)")
            send(.error(TaskFailure(taskID: id, attempt: assignment.attempt, message: "\(error)")))
        }
    }

    /// Uploads a result's outputs, then the result (the coordinator checks them by hash).
    private func deliver(_ result: TaskResult) {
        for hash in result.outputs.values { upload(hash) }
        send(.result(result))
    }

    private func upload(_ hash: String) {
        guard let data = try? store.data(hash) else { return log.warning("cannot upload \(hash.prefix(12)): not in the local cache") }
        var offset = 0
        repeat {
            let end = min(data.count, offset + ArtifactStore.chunkSize)
            send(.artifactChunk(ArtifactChunk(hash: hash, offset: offset, total: data.count), data.subdata(in: offset..<end)))
            offset = end
        } while offset < data.count
    }

    /// The directory of the sweep's dataset files, fetched from the coordinator by the first
    /// slot of this host that needs them (nil when the task's data is generated).
    private func dataset(_ files: [String: String]) throws -> URL? {
        guard !files.isEmpty else { return nil }
        let shared = try DatasetShipment.hostStore(beside: options.cache)
        try DatasetShipment.whileHoldingLock(of: shared) {
            let missing = files.filter { !shared.contains($0.value) }
            guard !missing.isEmpty else { return }
            let clock = Date()
            for hash in Set(missing.values) { try fetch(hash, into: shared) }
            let bytes = missing.values.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: shared.url($1).path)[.size] as? Int) ?? 0) }
            let line = String(format: "fetched the dataset from the coordinator: %d file(s), %.1f MB in %.1f s (kept by hash for this host's slots in %@)",
                              missing.count, Double(bytes) / 1e6, Date().timeIntervalSince(clock), shared.root.deletingLastPathComponent().path)
            log.info("\(line)")
        }
        return try DatasetShipment.directory(for: files, in: options.cache) { shared.url($0) }
    }

    /// Fetches an artifact in chunks into `target` (default: this slot's cache) unless it is
    /// there; a lost request is asked again.
    private func fetch(_ hash: String, into target: ArtifactStore? = nil) throws {
        let target = target ?? store
        guard !target.contains(hash) else { return }
        var data = Data(), total = -1, silentWaits = 0
        while total < 0 || data.count < total {
            let offset = data.count
            send(.artifactGet(ArtifactRequest(hash: hash, offset: offset, length: ArtifactStore.chunkSize)))
            guard let (chunk, bytes) = waitForChunk(hash: hash, offset: offset, seconds: options.deadAfterSeconds) else {
                silentWaits += 1
                guard silentWaits < 10 else { throw SweepError.invalid("artifact \(hash.prefix(12)) did not arrive from the coordinator") }
                continue
            }
            if chunk.total == 0 && hash != ArtifactStore.hash(Data()) { throw ArtifactError.missing(hash) }
            total = chunk.total
            data.append(bytes)
        }
        try target.put(data, expected: hash)
    }

    private func waitForChunk(hash: String, offset: Int, seconds: Double) -> (ArtifactChunk, Data)? {
        let deadline = DispatchTime.now() + seconds
        while true {
            let found = state.with { s -> (ArtifactChunk, Data)? in
                guard let index = s.chunks.firstIndex(where: { $0.0.hash == hash && $0.0.offset == offset }) else {
                    s.chunks.removeAll()
                    return nil
                }
                defer { s.chunks.remove(at: index) }
                return s.chunks[index]
            }
            if let found { return found }
            if chunkArrived.wait(timeout: deadline) == .timedOut { return nil }
        }
    }
}
