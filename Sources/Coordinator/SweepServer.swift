import BuildStamp
import Foundation
import Logging
import Model
import Protocol
import SweepLog
import TaskRuntime

/// The coordinator's side of the wire: one ROUTER, the workers' sessions, and the journal.
/// Every method runs on the socket's thread (the `SocketLoop` calls `receive` and `tick`), so
/// the state needs no locks; the journal commits each change before any answer goes out.
/// What it does, in the order a task lives: hand runnable tasks to workers with credit (never
/// more than a worker's slots), serve their input artifacts in chunks, store uploaded
/// checkpoints and outputs (hash-checked), record progress, accept each result once and only
/// from the worker holding the attempt with the outputs its step makes, re-queue the tasks of
/// lost workers and stalled tasks (they resume from their last checkpoint), retry failed ones
/// elsewhere, quarantine failing or stalling workers, keep each worker name to its key and
/// its live session, and report repeated trouble at most once per 10 s per reason.
public final class SweepServer: @unchecked Sendable {
    /// Limits from cluster.json.
    public struct Options: Sendable {
        /// Heartbeat interval and misses before a worker is lost.
        public var heartbeatSeconds: Double, missedHeartbeats: Int
        /// Error failures before a task is given up; consecutive failures before a worker is quarantined.
        public var retryLimit: Int, quarantineAfter: Int
        /// Seconds between the live status lines.
        public var statusEvery: Double
        /// Tasks at once per cluster.json host, for hosts that set `maxTasks`.
        public var hostCaps: [String: Int]
        /// The sweep's dataset files by name and hash, sent with every task (`DatasetShipment`).
        public var datasetFiles: [String: String] = [:]
        /// Seconds a task may go without progress (nil: derived from the epochs seen).
        public var stallSeconds: Double?
        /// The secrets of the slots the coordinator launches, by worker name.
        public var slotSecrets: SlotSecrets
        /// Whether workers of another build than the coordinator's may join (`--allow-mixed-builds`).
        public var allowMixedBuilds: Bool
        /// Hears the sweep's events for the dashboard and metrics (nil: nobody listens).
        public var monitor: (any SweepMonitor)?
        /// The most tasks each worker may hold at once, whatever its hello claims.
        public var slotLimit: WorkerSlotLimit

        /// Options from a cluster; `maxWorkerSlots` bounds the workers the coordinator does not start.
        public init(cluster: ClusterConfig, statusEvery: Double = 10, slotSecrets: SlotSecrets = SlotSecrets(), allowMixedBuilds: Bool = false,
                    maxWorkerSlots: Int? = nil) {
            slotLimit = WorkerSlotLimit(cluster: cluster, maximum: maxWorkerSlots)
            stallSeconds = cluster.stallSeconds
            self.slotSecrets = slotSecrets
            self.allowMixedBuilds = allowMixedBuilds
            heartbeatSeconds = cluster.heartbeatSeconds
            missedHeartbeats = cluster.missedHeartbeats
            retryLimit = cluster.retryLimit
            quarantineAfter = cluster.quarantineAfter
            self.statusEvery = statusEvery
            hostCaps = Dictionary(uniqueKeysWithValues: cluster.hosts.compactMap { host in host.maxTasks.map { (host.name, $0) } })
        }
    }

    private let journal: Journal
    private let store: ArtifactStore
    private let options: Options
    private let log: Logger
    private let started = Date()
    private var sender: (([Data]) -> Void)?
    private var sessions: [Data: WorkerSession] = [:]
    private var uploads: [String: Data] = [:]
    private var failedOn: [String: Set<String>] = [:]
    private var dispatchedAt: [String: Date] = [:]
    /// Artifacts lately served, newest first, checked against their hash once: workers fetch
    /// in 1 MiB chunks, often several files at once (a dataset's four or six), and re-reading
    /// and re-hashing a whole file per chunk would cost the socket thread seconds per file.
    private var readCache: [(hash: String, data: Data)] = []
    /// What `readCache` may hold: a CIFAR-10 set (6 × 30 MB) and a few weights files.
    private static let readCacheBytes = 256 << 20
    private var needsDispatch = true
    private var lastStatus = Date()
    private var stallWatch: StallWatch
    /// Learned training speeds, the running copies of trainings, and the workers whose copy
    /// lost a race (their uploads until their next `ready` are dropped quietly).
    private var speeds: WorkerSpeed
    private var copies = TrainingCopies()
    private var lostRace: Set<Data> = []
    /// When each worker last delivered a result: it asks for its next task within moments.
    private var finishedAt: [String: Double] = [:]
    /// Workers whose hello claimed more slots than their bound (warned once each).
    private var slotClaimsCut: Set<String> = []
    /// Trainings held back from a slow worker, noted once per worker; when to look again.
    private var heldNoted: Set<String> = []
    private var retryDispatchAt: Double?
    /// Worker names and the CURVE key that first used each in the sweep (kept in the journal).
    private var nameKeys: [String: String]
    /// The log and journal of rejected frames, refused messages and peers, rate-limited.
    let reports: ReportThrottle
    private var trainingsThisRun = 0, trainingSecondsThisRun = 0.0
    private let finishedSignal = DispatchSemaphore(value: 0)
    private var finished = false
    /// Frames rejected as malformed, of an unknown version or type (read after `stop`).
    public private(set) var rejectedFrames = 0
    /// Well-formed messages refused: a result, progress or error from a worker that does not
    /// hold the task's current attempt, or an upload from a worker that holds no task.
    public private(set) var refusedMessages = 0
    /// Per finished task: seconds from dispatch to result minus the worker's step time.
    public private(set) var overheads: [Double] = []

    /// A server over `journal` and `store`; attach it to a socket with `attach`.
    public init(journal: Journal, store: ArtifactStore, options: Options, log: Logger) {
        self.journal = journal
        self.store = store
        self.options = options
        self.log = log
        stallWatch = StallWatch(fixedLimit: options.stallSeconds)
        speeds = WorkerSpeed((try? journal.speeds()) ?? [])
        reports = ReportThrottle(journal: journal, log: { line in log.warning("\(line)") })
        let bound = ((try? journal.events("name-bound")) ?? []).compactMap { event in event["worker"].flatMap { name in event["key"].map { (name, $0) } } }
        nameKeys = Dictionary(bound, uniquingKeysWith: { first, _ in first })
    }

    /// Gives the server the function that queues frames on its socket. Call it before any
    /// worker is started (messages that arrive earlier are answered with a request to rejoin).
    public func attach(_ send: @escaping ([Data]) -> Void) { sender = send }

    /// Workers connected now (read from another thread: a momentary count is enough).
    public var liveWorkers: Int { liveCount.with { $0 } }
    private let liveCount = Locked(0)

    /// Waits up to `seconds` for every task to be done, failed, or blocked behind a failed
    /// one; returns whether the sweep is finished.
    public func waitUntilFinished(seconds: Double) -> Bool {
        finishedSignal.wait(timeout: .now() + seconds) == .success
    }

    private func now() -> Double { Date().timeIntervalSince1970 }

    private func send(_ peer: Data, _ message: Message) {
        sender?([peer] + Wire.encode(message))
        sessions[peer]?.liveness.sent(at: now())
    }

    // MARK: receiving

    /// Handles one multipart message from the ROUTER (routing id first); `senderKey` is the
    /// sender's CURVE public key when the wire is encrypted.
    public func receive(_ frames: [Data], senderKey: String? = nil) {
        guard let peer = frames.first, frames.count > 1 else { return reject(nil, "empty message", "a message with no frames after the routing id") }
        let message: Message
        do { message = try Wire.decode(Array(frames.dropFirst())) } catch { return reject(peer, Self.kind(of: error), error.description) }
        sessions[peer]?.liveness.heard(at: now())
        if let monitor = options.monitor, let name = sessions[peer]?.name { monitor.workerHeard(name, at: now()) }
        do {
            try handle(message, from: peer, senderKey: senderKey)
        } catch {
            log.error("error handling \(message.type) from \(sessions[peer]?.name ?? "an unknown peer"): \(error)")
        }
    }

    /// Counts a rejected frame; `reason` is its kind (the rate limit's key), `detail` says
    /// what exactly was wrong with this one.
    private func reject(_ peer: Data?, _ reason: String, _ detail: String) {
        rejectedFrames += 1
        options.monitor?.frameRejected(reason: reason)
        let who = peer.flatMap { sessions[$0]?.name } ?? "an unknown peer"
        reports.report("rejected-frame", reason: reason, line: "rejected a frame from \(who): \(detail) (\(rejectedFrames) rejected so far)")
    }

    /// The kind of a wire error, without the parts that differ from frame to frame.
    private static func kind(of error: WireError) -> String {
        switch error {
        case .tooFewFrames: "too few frames"
        case .unknownProtocol: "unknown protocol"
        case .unsupportedVersion: "unsupported protocol version"
        case .unknownType: "unknown message type"
        case .malformedHeader(let type, _): "\(type) header does not decode"
        case .wrongPayload(let type, _): "\(type) with the wrong payload"
        }
    }

    /// Counts a refused message; `reason` is its kind (the rate limit's key).
    private func refuse(_ peer: Data, _ reason: String, _ detail: String, event: String) {
        refusedMessages += 1
        let who = sessions[peer]?.name ?? "an unknown peer"
        reports.report(event, reason: reason, line: "refused \(detail) from \(who) (\(refusedMessages) refused so far)")
    }

    /// Whether `session` holds `attempt` of `task`. Anything it says of a task it does not
    /// hold (a forgery, or news of an attempt that was taken from it) changes nothing: it is
    /// refused and answered with `cancel`.
    private func holds(_ session: WorkerSession, _ task: String, attempt: Int, _ what: String) throws -> Bool {
        guard session.running[task] != attempt else { return true }
        refuse(session.peer, "\(what) for a task the worker does not hold",
               "\(what) for attempt \(attempt) of \(try describe(task)), which this worker does not hold", event: "refused-message")
        send(session.peer, .cancel(Cancel(taskID: task, reason: "this worker does not hold attempt \(attempt) of the task")))
        return false
    }

    private func handle(_ message: Message, from peer: Data, senderKey: String?) throws {
        switch message {
        case .hello(let hello): try join(peer, hello, key: senderKey)
        case .artifactChunk(let chunk, let bytes): try upload(chunk, bytes, from: peer)
        default:
            guard var session = sessions[peer] else {
                // A worker the coordinator does not know (it restarted, or declared the worker lost).
                return send(peer, .shutdown(Shutdown(reason: "the coordinator does not know this worker; introduce yourself again", rejoin: true)))
            }
            if try dropsLate(message, from: session) { return }
            switch message {
            case .ready(let ready):
                session.grant(ready.credit)
                sessions[peer] = session
                // A worker asks again only after its task thread stopped: nothing of a lost race follows.
                lostRace.remove(peer)
                needsDispatch = true
            case .progress(let progress):
                if try holds(session, progress.taskID, attempt: progress.attempt, "progress") { try record(progress, session: session) }
            case .result(let result):
                if try holds(session, result.taskID, attempt: result.attempt, "a result") { try complete(result, session: session) }
            case .error(let failure):
                if try holds(session, failure.taskID, attempt: failure.attempt, "an error") { try fail(failure, session: session) }
            case .artifactGet(let request):
                progressed(session)
                try serve(request, to: peer)
            case .log(let line): relay(line, from: session)
            case .heartbeat: break
            default: reject(peer, "\(message.type) from a worker", "a worker may not send \(message.type)")
            }
        }
    }

    /// Only the task thread asks for and uploads artifacts: its holder's tasks are moving.
    private func progressed(_ session: WorkerSession) {
        for task in session.running.keys { stallWatch.progressed(task, at: now()) }
    }

    private func join(_ peer: Data, _ hello: Hello, key: String?) throws {
        guard hello.version == CodeVersion.current else {
            log.warning("refused worker \(hello.worker) on \(hello.host): it runs version \(hello.version), this coordinator \(CodeVersion.current); install the same build on both")
            return send(peer, .shutdown(Shutdown(reason: "refused: version \(hello.version) does not match the coordinator's \(CodeVersion.current)")))
        }
        let build = hello.build ?? "unknown (a worker older than build stamps)", own = BuildInfo.current.identifier
        guard hello.build == own || options.allowMixedBuilds else {
            log.warning("refused worker \(hello.worker) on \(hello.host): it is build \(build), this coordinator \(own); install this build there (docs/cluster.md, bundle) or start the sweep with --allow-mixed-builds")
            return send(peer, .shutdown(Shutdown(reason: "refused: this worker is build \(build), the coordinator \(own); run the same commit on both, or start the coordinator with --allow-mixed-builds")))
        }
        if hello.build != own { log.notice("worker \(hello.worker) on \(hello.host) is build \(build), this coordinator \(own); mixed builds are allowed (results.json records each one's commit)") }
        guard hello.slots >= 1 else {
            log.warning("refused worker \(hello.worker) on \(hello.host): its hello declares \(hello.slots) slots; a worker runs at least 1 task")
            return send(peer, .shutdown(Shutdown(reason: "refused: hello field slots is \(hello.slots); declare at least 1")))
        }
        if let refusal = nameRefusal(peer, hello, key: key) {
            refuse(peer, refusal.reason, "hello as worker \(hello.worker) (\(refusal.detail))", event: "name-refused")
            return send(peer, .shutdown(Shutdown(reason: "refused: \(refusal.detail)")))
        }
        if let key, nameKeys[hello.worker] == nil {
            nameKeys[hello.worker] = key
            try journal.note("name-bound", ["worker": hello.worker, "key": key])
        }
        // The same worker on a new connection, or its slot relaunched (it proved so with its
        // secret): whatever its old session ran and it no longer runs is lost.
        var carried: [String: Int] = [:]
        for (oldPeer, old) in sessions where old.name == hello.worker {
            sessions[oldPeer] = nil
            for (task, attempt) in old.running {
                if hello.running.contains(task) { carried[task] = attempt } else { try lose(task, attempt: attempt, worker: old.name, why: "it restarted") }
            }
        }
        var session = WorkerSession(peer: peer, hello: hello, liveness: Liveness(interval: options.heartbeatSeconds,
                                                                                  allowedMisses: options.missedHeartbeats, now: now()))
        session.slots = try slots(of: hello)
        session.running = carried
        for task in hello.running where carried[task] == nil {
            if let attempt = try journal.adopt(task, worker: hello.worker) {
                session.running[task] = attempt
                stallWatch.progressed(task, at: now())
                try track(task, attempt: attempt, on: session)
                session.status = try describe(task)
                dispatchedAt[task] = dispatchedAt[task] ?? Date()
                log.info("worker \(hello.worker) still runs \(session.status); adopted (attempt \(attempt))")
            } else {
                send(peer, .cancel(Cancel(taskID: task, reason: "the task is done or runs elsewhere")))
            }
        }
        sessions[peer] = session
        try journal.note("join", ["worker": hello.worker, "host": hello.host, "threads": String(hello.threads), "blas": hello.blasCore])
        options.monitor?.workerJoined(hello, at: now())
        log.info("worker \(hello.worker) joined from \(hello.host): \(hello.threads) thread(s) of \(hello.cores) cores, BLAS \(hello.blasCore)\(hello.gpu.map { ", GPU \($0)" } ?? ""), device \(hello.device ?? "cpu")")
        send(peer, .heartbeat)
        needsDispatch = true
    }

    /// The slots the worker that said `hello` gets: its claim, cut to its bound with one
    /// warning (and a `slots-cut` event) per worker name.
    private func slots(of hello: Hello) throws -> Int {
        // A launched slot's name reaches here only with its secret (`nameRefusal`).
        let (bound, source) = options.slotLimit.bound(for: hello, launched: options.slotSecrets[hello.worker] != nil)
        guard hello.slots > bound else { return hello.slots }
        if slotClaimsCut.insert(hello.worker).inserted {
            log.warning("worker \(hello.worker) on \(hello.host) claims \(hello.slots) slots; it gets at most \(bound) (\(source))")
            try journal.note("slots-cut", ["worker": hello.worker, "claimed": String(hello.slots), "bound": String(bound)])
        }
        return bound
    }

    /// Why `hello` may not speak for its worker name, if it may not. Under CURVE a name is
    /// bound to the key that first used it in the sweep. A launched slot's name needs the
    /// slot's secret. Any other name in use by a live session needs that session's secret
    /// (the same process reconnecting); a second peer cannot take a live worker's session.
    private func nameRefusal(_ peer: Data, _ hello: Hello, key: String?) -> (reason: String, detail: String)? {
        if let key, let owner = nameKeys[hello.worker], owner != key {
            return ("worker name bound to another key",
                    "worker name \(hello.worker) belongs to CURVE key \(owner), which first used it in this sweep; this peer's key is \(key). Give this worker its own --name")
        }
        if let slotSecret = options.slotSecrets[hello.worker] {
            guard hello.secret == slotSecret else {
                return ("a launched slot's name without its secret",
                        "worker name \(hello.worker) belongs to a slot the coordinator launched, and this hello lacks the slot's secret (\(SlotSecret.environmentKey)). Give this worker another --name")
            }
            return nil
        }
        let time = now()
        guard let live = sessions.values.first(where: { $0.name == hello.worker && $0.peer != peer && !$0.liveness.isDead(at: time) }),
              hello.secret == nil || hello.secret != live.hello.secret else { return nil }
        return ("worker name in use by a live session",
                "worker name \(hello.worker) is in use by a live session, and this hello is not from the same process. Give this worker another --name, or stop the other one")
    }

    private func record(_ progress: Protocol.Progress, session: WorkerSession) throws {
        let time = now()
        stallWatch.progressed(progress.taskID, at: time, epochSeconds: progress.metrics["seconds"])
        try learnSpeed(from: progress, session: session, at: time)
        if let checkpoint = progress.checkpoint, store.contains(checkpoint), copies.checkpointed(progress.taskID, epoch: progress.epoch) {
            try journal.checkpoint(progress.taskID, artifact: checkpoint)
        }
        let accuracy = progress.metrics["testAccuracy"].map { String(format: " test %.1f%%", $0 * 100) } ?? ""
        let summary = try describe(progress.taskID)
        options.monitor?.taskProgressed(progress, summary: summary, worker: session.name)
        sessions[session.peer]?.status = "\(summary) epoch \(progress.epoch)/\(progress.epochs)\(accuracy)"
        log.info("  \(session.name): \(summary) epoch \(progress.epoch)/\(progress.epochs)\(accuracy)")
    }

    /// A worker's log line goes into the coordinator's log under the worker's name and the
    /// task's summary, at its own level (an unknown level counts as info), cut to
    /// `WorkerLogLine.maximumLength` characters.
    private func relay(_ line: WorkerLogLine, from session: WorkerSession) {
        var logger = log
        logger[metadataKey: SweepLogHandler.workerKey] = "\(session.name)"
        logger[metadataKey: "host"] = "\(session.hello.host)"
        if let task = line.taskID { logger[metadataKey: SweepLogHandler.taskKey] = "\((try? describe(task)) ?? String(task.prefix(12)))" }
        logger.log(level: Logger.Level(rawValue: line.level) ?? .info, "\(line.message.prefix(WorkerLogLine.maximumLength))")
    }

    private func serve(_ request: ArtifactRequest, to peer: Data) throws {
        let data: Data
        if let index = readCache.firstIndex(where: { $0.hash == request.hash }) {
            data = readCache[index].data
            readCache.insert(readCache.remove(at: index), at: 0)
        } else if store.contains(request.hash) {
            data = try store.data(request.hash)
            readCache.insert((request.hash, data), at: 0)
            var kept = 0
            readCache = Array(readCache.prefix { entry in
                kept += entry.data.count
                return kept <= Self.readCacheBytes || entry.hash == request.hash
            })
        } else {
            // An empty chunk of an unknown total tells the worker the artifact is not here.
            log.warning("worker \(sessions[peer]?.name ?? "?") asked for artifact \(request.hash.prefix(12)), which is not in the store")
            return send(peer, .artifactChunk(ArtifactChunk(hash: request.hash, offset: 0, total: 0), Data()))
        }
        let start = min(max(0, request.offset), data.count)
        let end = min(data.count, start + max(0, min(request.length, ArtifactStore.chunkSize)))
        send(peer, .artifactChunk(ArtifactChunk(hash: request.hash, offset: start, total: data.count), data.subdata(in: start..<end)))
        options.monitor?.artifactBytes(end - start, sent: true)
    }

    private func upload(_ chunk: ArtifactChunk, _ bytes: Data, from peer: Data) throws {
        let key = peer.base64EncodedString() + "/" + chunk.hash
        guard let session = sessions[peer], !session.running.isEmpty else {
            // Chunks name no task: only a worker that holds one uploads (its checkpoints and
            // outputs). The first chunk is refused aloud, the rest of the artifact quietly.
            uploads[key] = nil
            if chunk.offset == 0 && !lostRace.contains(peer) {
                refuse(peer, "an upload from a worker that holds no task", "an upload of artifact \(chunk.hash.prefix(12)) (it holds no task)", event: "artifact-refused")
            }
            return
        }
        progressed(session)
        var buffer = uploads[key] ?? Data()
        guard chunk.offset == buffer.count else {
            uploads[key] = nil
            return reject(peer, "artifact chunk out of order", "artifact \(chunk.hash.prefix(12)) chunk at \(chunk.offset) but \(buffer.count) bytes received")
        }
        buffer.append(bytes)
        options.monitor?.artifactBytes(bytes.count, sent: false)
        if buffer.count < chunk.total {
            uploads[key] = buffer
            return
        }
        uploads[key] = nil
        do { try store.put(buffer, expected: chunk.hash) } catch {
            log.warning("refused an upload from \(session.name): \(error)")
            try journal.note("artifact-refused", ["hash": chunk.hash, "reason": "\(error)"])
        }
    }

    // MARK: outcomes

    private func complete(_ result: TaskResult, session: WorkerSession) throws {
        let peer = session.peer, worker = session.name
        guard let row = try journal.task(result.taskID) else { return reject(peer, "result for an unknown task", "result for unknown task \(result.taskID.prefix(12))") }
        let task = try JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8))
        do {
            try task.checkOutputs(result.outputs, inputs: try journal.inputArtifacts(of: row, spec: task), store: store)
        } catch {
            // Outputs that are missing, corrupt or not what the step makes are an error of
            // this attempt (it retries elsewhere), never a silent accept.
            return try fail(TaskFailure(taskID: result.taskID, attempt: result.attempt, message: "\(error)"), session: session)
        }
        sessions[peer]?.running[result.taskID] = nil
        stallWatch.forget(result.taskID)
        sessions[peer]?.consecutiveFailures = 0
        sessions[peer]?.status = "idle"
        let step = (try? JSONDecoder().decode(StepTimes.self, from: Data(result.metrics.utf8))) ?? StepTimes(stepSeconds: 0)
        let elapsed = dispatchedAt[result.taskID].map { Date().timeIntervalSince($0) } ?? step.stepSeconds
        var record = "{}"
        if task.labels.reported, let metrics = result.outputs["metrics"] {
            let summary = try JSONDecoder().decode(RunSummary.self, from: try store.data(metrics))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var line = SweepOutputs.record(for: task, summary: summary, wallSeconds: elapsed, worker: worker,
                                           host: session.hello.host, codeVersion: CodeVersion.current)
            line.gpu = session.hello.gpu
            line.stamp(build: session.hello.build)
            record = String(decoding: try encoder.encode(line), as: UTF8.self)
        }
        let accepted = try journal.complete(result.taskID, attempt: result.attempt, outputs: result.outputs, record: record)
        send(peer, .accepted(Accepted(taskID: result.taskID, attempt: result.attempt, duplicate: !accepted)))
        guard accepted else { return log.notice("dropped a duplicate result of \(task.summary) from \(worker)") }
        options.monitor?.taskDone(result.taskID, summary: task.summary, worker: worker, seconds: elapsed)
        if dispatchedAt[result.taskID] != nil { overheads.append(max(0, elapsed - step.stepSeconds)) }
        dispatchedAt[result.taskID] = nil
        if case .train = task.step {
            trainingsThisRun += 1
            trainingSecondsThisRun += elapsed
        }
        copies.ended(result.taskID, attempt: result.attempt)
        finishedAt[worker] = now()
        for (otherPeer, other) in sessions where otherPeer != peer {
            guard let loser = other.running[result.taskID] else { continue }
            sessions[otherPeer]?.running[result.taskID] = nil
            sessions[otherPeer]?.status = "idle"
            copies.supersede(result.taskID, attempt: loser)
            lostRace.insert(otherPeer)
            send(otherPeer, .cancel(Cancel(taskID: result.taskID, reason: "finished on \(worker)")))
            log.info("cancelled attempt \(loser) of \(task.summary) on \(other.name): attempt \(result.attempt) on \(worker) finished first")
        }
        let counts = try journal.tasks().reduce(into: [Journal.State: Int]()) { $0[$1.state, default: 0] += 1 }
        let total = counts.values.reduce(0, +)
        log.info("[\(counts[.done] ?? 0)/\(total)] done \(task.summary) on \(worker) in \(String(format: "%.1f", elapsed)) s")
        needsDispatch = true
    }

    private func fail(_ failure: TaskFailure, session: WorkerSession) throws {
        guard session.running[failure.taskID] == failure.attempt else { return }
        sessions[session.peer]?.running[failure.taskID] = nil
        sessions[session.peer]?.status = "idle"
        copies.ended(failure.taskID, attempt: failure.attempt)
        if copyRuns(failure.taskID) {
            failedOn[failure.taskID, default: []].insert(session.name)
            try journal.endCopy(failure.taskID, attempt: failure.attempt, .error, message: failure.message)
            let failed = try describe(failure.taskID)
            log.warning("\(session.name) failed its copy of \(failed): \(failure.message) — the other copy runs on")
            try strike(session.peer, "failed")
            needsDispatch = true
            return
        }
        dispatchedAt[failure.taskID] = nil
        stallWatch.forget(failure.taskID)
        failedOn[failure.taskID, default: []].insert(session.name)
        try journal.abandon(failure.taskID, attempt: failure.attempt, lostWorker: false, message: failure.message, retryLimit: options.retryLimit)
        let state = try journal.task(failure.taskID)?.state, summary = try describe(failure.taskID)
        options.monitor?.taskFailed(failure.taskID, summary: summary, worker: session.name, message: failure.message, givenUp: state == .failed)
        log.error("\(session.name) failed \(summary): \(failure.message)\(state == .failed ? " — given up after \(options.retryLimit + 1) failures" : " — will retry on another worker")")
        try strike(session.peer, "failed")
        needsDispatch = true
    }

    /// Takes a task whose holder heartbeats but has shown no progress for longer than the
    /// stall limit: it goes back to the queue as a lost task (no failure of the task) and
    /// resumes elsewhere from its checkpoint; the worker is told to cancel it, and the stall
    /// counts against the worker as a failure does.
    private func stall(_ task: String, attempt: Int, session: WorkerSession, silence: Double) throws {
        sessions[session.peer]?.running[task] = nil
        sessions[session.peer]?.status = "idle"
        failedOn[task, default: []].insert(session.name)
        let seconds = String(format: "%.1f", silence), limit = String(format: "%.0f", stallWatch.limit)
        try journal.note("stalled", ["worker": session.name, "task": task, "silentSeconds": seconds])
        send(session.peer, .cancel(Cancel(taskID: task, reason: "no progress for \(seconds) s, over the stall limit of \(limit) s (cluster.json stallSeconds); the task runs elsewhere")))
        try lose(task, attempt: attempt, worker: session.name, why: "no progress on the task for \(seconds) s, over the stall limit of \(limit) s, while it heartbeats")
        try strike(session.peer, "failed or stalled")
    }

    /// One more failed (or stalled) task of a worker in a row; at `quarantineAfter` it gets
    /// no more work and is told so.
    private func strike(_ peer: Data, _ what: String) throws {
        guard var session = sessions[peer] else { return }
        session.consecutiveFailures += 1
        defer { sessions[peer] = session }
        guard session.consecutiveFailures >= options.quarantineAfter, !session.quarantined else { return }
        session.quarantined = true
        try journal.note("quarantine", ["worker": session.name])
        log.warning("quarantined worker \(session.name) after \(session.consecutiveFailures) \(what) tasks in a row; check its log")
        send(peer, .shutdown(Shutdown(reason: "refused: quarantined after \(session.consecutiveFailures) \(what) tasks in a row")))
    }

    private func lose(_ task: String, attempt: Int, worker: String, why: String) throws {
        copies.ended(task, attempt: attempt)
        if copyRuns(task) {
            try journal.endCopy(task, attempt: attempt, .lost, message: "worker \(worker) lost: \(why)")
            let copy = try describe(task)
            log.warning("worker \(worker) lost (\(why)); the other copy of \(copy) runs on")
            needsDispatch = true
            return
        }
        try journal.abandon(task, attempt: attempt, lostWorker: true, message: "worker \(worker) lost: \(why)", retryLimit: options.retryLimit)
        dispatchedAt[task] = nil
        stallWatch.forget(task)
        let resume = try journal.task(task)?.checkpoint == nil ? "from the start" : "from its last checkpoint"
        let summary = try describe(task)
        options.monitor?.taskRequeued(task, summary: summary, worker: worker, why: why)
        log.warning("worker \(worker) lost (\(why)); \(summary) goes back to the queue and resumes \(resume)")
        needsDispatch = true
    }

    private func describe(_ task: String) throws -> String {
        guard let row = try journal.task(task), let spec = try? JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8)) else {
            return "task \(task.prefix(12))"
        }
        return spec.summary
    }

    // MARK: heterogeneous workers (speeds, held trainings, backup copies)

    /// A worker that just delivered a result counts as free for this long, awaiting its
    /// `ready`; a worker with a free slot that asks for nothing is not waited for.
    private static let readyGrace = 5.0

    /// Drops what a worker says of a copy that lost the race to another copy (it was sent
    /// before the worker heard `cancel`): no refusal, no failure, no strike. A late result
    /// is journaled (`late-result`); the attempt is already `superseded`.
    private func dropsLate(_ message: Message, from session: WorkerSession) throws -> Bool {
        let said: (task: String, attempt: Int)? = switch message {
        case .progress(let progress): (progress.taskID, progress.attempt)
        case .result(let result): (result.taskID, result.attempt)
        case .error(let failure): (failure.taskID, failure.attempt)
        default: nil
        }
        guard let said, session.running[said.task] != said.attempt, copies.isSuperseded(said.task, attempt: said.attempt, on: session.name) else { return false }
        if case .result = message {
            try journal.note("late-result", ["task": said.task, "attempt": String(said.attempt), "worker": session.name])
            let late = try describe(said.task)
            log.info("ignored the late result of attempt \(said.attempt) of \(late) from \(session.name): another copy finished first")
        }
        return true
    }

    /// Starts following `attempt` of `task` on `session` when the task is a training.
    private func track(_ task: String, attempt: Int, on session: WorkerSession, backupOf: Int? = nil) throws {
        guard let row = try journal.task(task), let workload = TrainingWorkload(try JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8))) else { return }
        copies.started(task, attempt: attempt, worker: session.name, host: session.hello.host, workload: workload,
                       fromEpoch: copies.checkpointEpoch(task), at: now(), backupOf: backupOf)
    }

    /// Folds an epoch of a training into its worker's speed (journaled, so `coordinator
    /// status` and a restarted coordinator see it); an idle worker may now warrant a backup.
    private func learnSpeed(from progress: Protocol.Progress, session: WorkerSession, at time: Double) throws {
        guard let (copy, seconds) = copies.progressed(progress.taskID, attempt: progress.attempt, epoch: progress.epoch,
                                                       claimedSeconds: progress.metrics["seconds"], at: time) else { return }
        if let seconds, let estimate = speeds.observe(worker: session.name, host: session.hello.host, workload: copy.workload.key,
                                                      images: copy.workload.imagesPerEpoch, seconds: seconds) {
            try journal.noteSpeed(worker: estimate.worker, host: estimate.host, workload: estimate.workload, imagesPerSecond: estimate.imagesPerSecond)
        }
        if sessions.values.contains(where: mayStart) { needsDispatch = true }
    }

    /// Whether some session still runs a copy of `task`.
    private func copyRuns(_ task: String) -> Bool {
        sessions.values.contains { $0.running[task] != nil }
    }

    private func imagesPerSecond(_ session: WorkerSession, _ workload: TrainingWorkload) -> Double? {
        speeds.imagesPerSecond(worker: session.name, host: session.hello.host, workload: workload.key)
    }

    /// The order of candidates for a task: fewest tasks held, then, for a training, fastest.
    private func preferred(_ a: WorkerSession, over b: WorkerSession, for workload: TrainingWorkload?) -> Bool {
        guard a.running.count == b.running.count, let workload else { return a.running.count < b.running.count }
        return (imagesPerSecond(a, workload) ?? 0) > (imagesPerSecond(b, workload) ?? 0)
    }

    /// Whether a training should wait for a faster worker instead of starting on `chosen`
    /// (`TrainingPlacement`); noted once per task and worker, and looked at again in a second.
    private func holdsBack(_ task: TaskSpec, _ id: String, _ workload: TrainingWorkload, from chosen: WorkerSession) -> Bool {
        let time = now()
        let images = workload.imagesLeft(after: copies.checkpointEpoch(id))
        let others = sessions.values
            .filter { $0.peer != chosen.peer && !$0.quarantined && !(failedOn[id]?.contains($0.name) ?? false) }
            .map { outlook($0, for: workload, at: time) }
        let here = WorkerOutlook(name: chosen.name, imagesPerSecond: imagesPerSecond(chosen, workload), freeIn: 0)
        guard let faster = TrainingPlacement.fasterWorker(for: images, candidate: here, others: others),
              let slow = here.imagesPerSecond, let fast = faster.imagesPerSecond else { return false }
        retryDispatchAt = min(retryDispatchAt ?? .infinity, time + 1)
        if heldNoted.insert("\(id)/\(chosen.name)").inserted {
            log.info("held \(task.summary) back from \(chosen.name) (\(Self.seconds(images / slow)) s there) for \(faster.name) (free in \(Self.seconds(faster.freeIn ?? 0)) s, then \(Self.seconds(images / fast)) s)")
            try? journal.note("held", ["task": id, "worker": chosen.name, "for": faster.name])
        }
        return true
    }

    /// `session` as the placement rule sees it for `workload` at `time`.
    private func outlook(_ session: WorkerSession, for workload: TrainingWorkload, at time: Double) -> WorkerOutlook {
        let freeIn: Double?
        if session.running.count < session.slots {
            let justFinished = finishedAt[session.name].map { time - $0 < Self.readyGrace } ?? false
            freeIn = session.credit > 0 || justFinished ? 0 : nil
        } else {
            // Its soonest copy to end; an init or prune step (not followed) ends in seconds.
            freeIn = session.running.compactMap { task, attempt -> Double? in
                guard let copy = copies.of(task).first(where: { $0.attempt == attempt }) else { return 0 }
                return speeds.imagesPerSecond(worker: copy.worker, host: copy.host, workload: copy.workload.key)
                    .map { TrainingCopies.secondsLeft(copy, imagesPerSecond: $0, at: time) }
            }.min()
        }
        return WorkerOutlook(name: session.name, imagesPerSecond: imagesPerSecond(session, workload), freeIn: freeIn)
    }

    /// Nothing is left to start: each idle worker may take a backup copy of the training
    /// expected to finish last (`BackupTasks`), at most one backup per task.
    private func startBackups() throws {
        let time = now()
        for idle in sessions.values.filter(mayStart).sorted(by: { $0.name < $1.name }) {
            let running = Dictionary(grouping: copies.all, by: \.task).compactMap { task, list -> BackupTasks.Running? in
                guard list.count == 1, let copy = list.first, !copies.backedUp.contains(task) else { return nil }
                let left = speeds.imagesPerSecond(worker: copy.worker, host: copy.host, workload: copy.workload.key)
                    .map { TrainingCopies.secondsLeft(copy, imagesPerSecond: $0, at: time) }
                return BackupTasks.Running(task: task, attempt: copy.attempt, workload: copy.workload.key, secondsLeft: left,
                                           imagesForBackup: copy.workload.imagesLeft(after: copies.checkpointEpoch(task)),
                                           excluded: Set([copy.worker]).union(failedOn[task] ?? []))
            }
            let workloads = Dictionary(copies.all.map { ($0.workload.key, $0.workload) }, uniquingKeysWith: { first, _ in first })
            let idleSpeeds = workloads.compactMapValues { imagesPerSecond(idle, $0) }
            guard let choice = BackupTasks.choose(for: idle.name, speeds: idleSpeeds, running: running) else { continue }
            try startBackup(choice, on: idle)
        }
    }

    /// Sends `idle` a backup copy of a running training, from the task's latest checkpoint.
    private func startBackup(_ choice: BackupTasks.Choice, on idle: WorkerSession) throws {
        guard let row = try journal.task(choice.task) else { return }
        let task = try JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8))
        let inputs = try journal.inputArtifacts(of: row, spec: task)
        let attempt = try journal.startBackup(choice.task, worker: idle.name, of: choice.original)
        sessions[idle.peer]?.credit -= 1
        sessions[idle.peer]?.running[choice.task] = attempt
        sessions[idle.peer]?.status = "backup of \(task.summary)"
        try track(choice.task, attempt: attempt, on: idle, backupOf: choice.original)
        send(idle.peer, .task(TaskAssignment(taskID: choice.task, attempt: attempt, spec: row.spec, inputs: inputs, datasetFiles: options.datasetFiles)))
        let holder = copies.of(choice.task).first { $0.attempt == choice.original }?.worker ?? "?"
        log.info("backup of attempt \(choice.original) of \(task.summary) on \(idle.name) as attempt \(attempt): expected \(Self.seconds(choice.originalSeconds)) s more on \(holder), \(Self.seconds(choice.backupSeconds)) s here\(row.checkpoint == nil ? "" : " (from its checkpoint)")")
    }

    private static func seconds(_ value: Double) -> String { String(format: "%.0f", value) }

    // MARK: the clock

    /// Heartbeats, lost workers, stalled tasks, dispatch, the live status line, the
    /// rate-limited reports and the end of the sweep.
    public func tick() {
        let time = now()
        for (peer, session) in sessions where !session.liveness.isDead(at: time) {
            for (task, attempt) in session.running {
                guard let silence = stallWatch.stalled(task, at: time) else { continue }
                do { try stall(task, attempt: attempt, session: sessions[peer] ?? session, silence: silence) } catch { log.error("cannot take stalled \(task.prefix(12)) from \(session.name): \(error)") }
            }
        }
        reports.flushDue(now: time)
        for (peer, session) in sessions {
            if session.liveness.isDead(at: time) {
                sessions[peer] = nil
                let silence = String(format: "%.1f", time - session.liveness.lastHeard)
                try? journal.note("lost", ["worker": session.name, "silentSeconds": silence])
                options.monitor?.workerLost(session.name, at: time)
                if session.running.isEmpty { log.warning("worker \(session.name) lost (silent for \(silence) s)") }
                for (task, attempt) in session.running {
                    try? lose(task, attempt: attempt, worker: session.name, why: "silent for \(silence) s")
                }
            } else if session.liveness.heartbeatDue(at: time) {
                send(peer, .heartbeat)
            }
        }
        liveCount.with { $0 = sessions.count }
        if let at = retryDispatchAt, time >= at {
            retryDispatchAt = nil
            needsDispatch = true
        }
        if needsDispatch {
            needsDispatch = false
            do { try dispatch() } catch { log.error("cannot dispatch: \(error)") }
        }
        if Date().timeIntervalSince(lastStatus) >= options.statusEvery {
            lastStatus = Date()
            if let line = try? statusLine() { log.info("\(line)") }
        }
    }

    private func dispatch() throws {
        let runnable = try journal.runnable()
        let running = sessions.values.reduce(0) { $0 + $1.running.count }
        if runnable.isEmpty && running == 0 {
            let states = try journal.tasks().map(\.state)
            if !states.contains(.running) && !finished {
                finished = true
                for peer in sessions.keys { send(peer, .shutdown(Shutdown(reason: "the sweep is finished"))) }
                finishedSignal.signal()
            }
            return
        }
        for row in runnable {
            let candidates = sessions.values.filter(mayStart)
            guard !candidates.isEmpty else { break }
            // A task that failed on a worker retries on another one when there is another.
            let fresh = candidates.filter { !(failedOn[row.id]?.contains($0.name) ?? false) }
            let alive = sessions.values.filter { !$0.quarantined }
            let untried = alive.contains { !(failedOn[row.id]?.contains($0.name) ?? false) }
            let task = try JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8))
            let workload = TrainingWorkload(task)
            guard let chosen = (fresh.isEmpty ? (untried ? nil : candidates) : fresh)?.min(by: { preferred($0, over: $1, for: workload) }) else { continue }
            if let workload, holdsBack(task, row.id, workload, from: chosen) { continue }
            let inputs = try journal.inputArtifacts(of: row, spec: task)
            let attempt = try journal.start(row.id, worker: chosen.name)
            if let workload {
                copies.started(row.id, attempt: attempt, worker: chosen.name, host: chosen.hello.host, workload: workload, fromEpoch: 0, at: now())
            }
            sessions[chosen.peer]?.credit -= 1
            sessions[chosen.peer]?.running[row.id] = attempt
            stallWatch.progressed(row.id, at: now())
            sessions[chosen.peer]?.status = task.summary
            dispatchedAt[row.id] = Date()
            send(chosen.peer, .task(TaskAssignment(taskID: row.id, attempt: attempt, spec: row.spec, inputs: inputs,
                                                   datasetFiles: options.datasetFiles, takesLogs: true)))
            options.monitor?.taskStarted(row.id, summary: task.summary, worker: chosen.name, attempt: attempt)
            let from = row.checkpoint == nil ? "" : " (resuming from its checkpoint)"
            log.info("start \(task.summary) on \(chosen.name), attempt \(attempt)\(from)")
        }
        if runnable.isEmpty { try startBackups() }
    }

    /// Whether `session` may start a task now: not quarantined, with credit and a free slot,
    /// and its host under its `maxTasks`.
    private func mayStart(_ session: WorkerSession) -> Bool {
        guard !session.quarantined && session.capacity > 0 else { return false }
        guard let group = session.hello.group, let cap = options.hostCaps[group] else { return true }
        return sessions.values.filter { $0.hello.group == group }.reduce(0) { $0 + $1.running.count } < cap
    }

    /// Tasks by state, per-worker state, throughput and the estimated time left (from the
    /// mean time of the trainings finished in this run; pruning steps take seconds).
    public func statusLine() throws -> String {
        let rows = try journal.tasks()
        let counts = rows.reduce(into: [Journal.State: Int]()) { $0[$1.state, default: 0] += 1 }
        let done = counts[.done] ?? 0, total = rows.count
        let minutes = Date().timeIntervalSince(started) / 60
        var line = "status: \(done)/\(total) done, \(counts[.running] ?? 0) running, \(counts[.queued] ?? 0) queued, \(counts[.failed] ?? 0) failed"
        if trainingsThisRun > 0 {
            let trainingsLeft = rows.filter { row in
                guard row.state == .queued || row.state == .running,
                      let spec = try? JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8)), case .train = spec.step else { return false }
                return true
            }.count
            let workers = max(1, sessions.values.filter { !$0.quarantined }.count)
            let left = Double(trainingsLeft) * trainingSecondsThisRun / Double(trainingsThisRun) / Double(workers)
            line += String(format: " | %.1f trainings/min, ETA ", Double(trainingsThisRun) / max(minutes, 1e-9)) + RemainingTime.describe(left)
        }
        for session in sessions.values.sorted(by: { $0.name < $1.name }) {
            line += "\n    \(session.name): \(session.quarantined ? "quarantined" : session.status)"
            for estimate in speeds.all where estimate.worker == session.name {
                line += " | \(String(format: "%.0f", estimate.imagesPerSecond)) images/s on \(estimate.workload)"
            }
        }
        return line
    }
}
