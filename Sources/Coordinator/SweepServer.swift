import BuildStamp
import Foundation
import Logging
import Model
import Protocol
import SweepLog
import TaskRuntime

/// The coordinator's side of the wire: one ROUTER's messages decoded, routed to the part
/// whose job they are, and answered. The parts: `WorkerSessions` (connections and liveness),
/// the `Scheduler` (placement, credit, held trainings, backup copies, quarantine, stalls; a
/// value without sockets), the `ArtifactService` (chunks served and uploads stored),
/// `TaskBoard` (the journal's tasks in memory) and result intake (`SweepServer+Results`:
/// output checks on the `FileWork` thread, acceptance here). Every method runs on the
/// socket's thread (the `SocketLoop` calls `receive` and `tick`), so the state needs no locks.
/// The journal's changes of one loop turn commit together at the end of the turn, before
/// any answer of that turn goes out (the loop sends queued frames only at its next turn).
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

    let journal: Journal
    let store: ArtifactStore
    let options: Options
    let log: Logger
    let started = Date()
    private var sender: (([Data]) -> Void)?
    /// The socket loop's wake, boxed (a bare function in `Locked` grows a thunk per access).
    private struct Wake: Sendable { let call: @Sendable () -> Void }
    private let waker = Locked<Wake?>(nil)
    var sessions = WorkerSessions()
    var scheduler: Scheduler
    var board: TaskBoard
    let files: FileWork
    let artifacts: ArtifactService
    let intake: ResultIntake
    var dispatchedAt: [String: Date] = [:]
    var needsDispatch = true
    /// When `tick` last looked at every session (`sweepSessions`).
    var lastSweep = 0.0
    /// Whether dispatch waits for stored uploads (`ArtifactService.isFull`).
    var heldForUploads = false
    var lastStatus = Date()
    /// Workers whose copy lost a race (their uploads until their next `ready` are dropped quietly).
    var lostRace: Set<Data> = []
    /// Workers whose hello claimed more slots than their bound (warned once each).
    var slotClaimsCut: Set<String> = []
    /// Worker names and the CURVE key that first used each in the sweep (kept in the journal).
    var nameKeys: [String: String]
    /// The log and journal of rejected frames, refused messages and peers, rate-limited.
    let reports: ReportThrottle
    var trainingsThisRun = 0, trainingSecondsThisRun = 0.0
    let finishedSignal = DispatchSemaphore(value: 0)
    var finished = false
    /// Tasks a restart put back in the queue, which their workers may still run: they go to
    /// no other worker until `adoptionUntil` (two liveness windows after the start), so a
    /// worker that rejoins early does not take the task of one that rejoins later.
    var awaitingAdoption: Set<String>, adoptionUntil: Double?
    /// The task counts the monitor heard last.
    private var countsTold: [Journal.State: Int] = [:]
    /// Frames rejected as malformed, of an unknown version or type (read after `stop`).
    public internal(set) var rejectedFrames = 0
    /// Well-formed messages refused: a result, progress or error from a worker that does not
    /// hold the task's current attempt, or an upload from a worker that holds no task.
    public internal(set) var refusedMessages = 0
    /// Per finished task: seconds from dispatch to result minus the worker's step time.
    public internal(set) var overheads: [Double] = []

    /// A server over `journal` and `store`; attach it to a socket with `attach`. `interrupted`
    /// are the tasks this start put back in the queue (`Journal.requeueInterrupted`).
    public init(journal: Journal, store: ArtifactStore, options: Options, log: Logger, interrupted: [String] = []) throws {
        awaitingAdoption = Set(interrupted)
        adoptionUntil = interrupted.isEmpty ? nil : Date().timeIntervalSince1970 + 2 * options.heartbeatSeconds * Double(options.missedHeartbeats)
        self.journal = journal
        self.store = store
        self.options = options
        self.log = log
        board = try TaskBoard(try journal.tasks())
        scheduler = Scheduler(quarantineAfter: options.quarantineAfter, hostCaps: options.hostCaps,
                              speeds: WorkerSpeed((try? journal.speeds()) ?? []), stallSeconds: options.stallSeconds)
        let waker = self.waker
        files = FileWork(wake: { waker.with { $0 }?.call() })
        artifacts = ArtifactService(store: store, files: files)
        intake = ResultIntake(store: store, files: files)
        reports = ReportThrottle(journal: journal, log: { line in log.warning("\(line)") })
        let bound = ((try? journal.events("name-bound")) ?? []).compactMap { event in event["worker"].flatMap { name in event["key"].map { (name, $0) } } }
        nameKeys = Dictionary(bound, uniquingKeysWith: { first, _ in first })
    }

    /// Gives the server the function that queues frames on its socket, and the one that wakes
    /// the socket's loop (for answers of file work). Call it before any worker is started
    /// (messages that arrive earlier are answered with a request to rejoin).
    public func attach(_ send: @escaping ([Data]) -> Void, wake: @escaping @Sendable () -> Void = {}) {
        sender = send
        waker.with { $0 = Wake(call: wake) }
    }

    /// Makes the socket loop run another turn at once (work of this turn was left for it).
    func wakeLoop() { waker.with { $0 }?.call() }

    /// Workers connected now (read from another thread: a momentary count is enough).
    public var liveWorkers: Int { liveCount.with { $0 } }
    let liveCount = Locked(0)

    /// Waits up to `seconds` for every task to be done, failed, or blocked behind a failed
    /// one; returns whether the sweep is finished.
    public func waitUntilFinished(seconds: Double) -> Bool {
        finishedSignal.wait(timeout: .now() + seconds) == .success
    }

    func now() -> Double { Date().timeIntervalSince1970 }

    func send(_ peer: Data, _ message: Message) {
        sender?([peer] + Wire.encode(message))
        sessions.sent(peer, at: now())
    }

    /// The journal's row of `task` again, into the board (after the journal changed it).
    func refresh(_ task: String) throws {
        if let row = try journal.task(task) { board.update(row) }
    }

    /// The monitor hears the task counts when they changed.
    func tellCounts() {
        guard board.counts != countsTold else { return }
        countsTold = board.counts
        options.monitor?.tasksCounted(board.counts)
    }

    // MARK: receiving

    /// Handles one multipart message from the ROUTER (routing id first); `senderKey` is the
    /// sender's CURVE public key when the wire is encrypted.
    public func receive(_ frames: [Data], senderKey: String? = nil) {
        do { try journal.beginTurn() } catch { log.error("cannot open the journal's transaction: \(error)") }
        guard let peer = frames.first, frames.count > 1 else { return reject(nil, "empty message", "a message with no frames after the routing id") }
        let message: Message
        do { message = try Wire.decode(Array(frames.dropFirst())) } catch { return reject(peer, Self.kind(of: error), error.description) }
        sessions.heard(peer, at: now())
        if let monitor = options.monitor, let name = sessions[peer]?.name { monitor.workerHeard(name, at: now()) }
        do {
            try handle(message, from: peer, senderKey: senderKey)
        } catch {
            log.error("error handling \(message.type) from \(sessions[peer]?.name ?? "an unknown peer"): \(error)")
        }
    }

    /// Counts a rejected frame; `reason` is its kind (the rate limit's key), `detail` says
    /// what exactly was wrong with this one.
    func reject(_ peer: Data?, _ reason: String, _ detail: String) {
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
    func refuse(_ peer: Data, _ reason: String, _ detail: String, event: String) {
        refusedMessages += 1
        let who = sessions[peer]?.name ?? "an unknown peer"
        reports.report(event, reason: reason, line: "refused \(detail) from \(who) (\(refusedMessages) refused so far)")
    }

    /// Whether `session` holds `attempt` of `task`. Anything it says of a task it does not
    /// hold (a forgery, or news of an attempt that was taken from it) changes nothing: it is
    /// refused and answered with `cancel`.
    private func holds(_ session: WorkerSession, _ task: String, attempt: Int, _ what: String) -> Bool {
        guard !scheduler.holds(session.name, task, attempt: attempt) else { return true }
        refuse(session.peer, "\(what) for a task the worker does not hold",
               "\(what) for attempt \(attempt) of \(board.summary(task)), which this worker does not hold", event: "refused-message")
        send(session.peer, .cancel(Cancel(taskID: task, reason: "this worker does not hold attempt \(attempt) of the task")))
        return false
    }

    private func handle(_ message: Message, from peer: Data, senderKey: String?) throws {
        switch message {
        case .hello(let hello): try join(peer, hello, key: senderKey)
        case .artifactChunk(let chunk, let bytes): upload(chunk, bytes, from: peer)
        default:
            guard let session = sessions[peer] else {
                // A worker the coordinator does not know (it restarted, or declared the worker lost).
                return send(peer, .shutdown(Shutdown(reason: "the coordinator does not know this worker; introduce yourself again", rejoin: true)))
            }
            if try dropsLate(message, from: session) { return }
            switch message {
            case .ready(let ready):
                scheduler.granted(session.name, credit: ready.credit)
                // A worker asks again only after its task thread stopped: nothing of a lost race follows.
                lostRace.remove(peer)
                needsDispatch = true
            case .progress(let progress):
                if holds(session, progress.taskID, attempt: progress.attempt, "progress") { try record(progress, session: session) }
            case .result(let result):
                if holds(session, result.taskID, attempt: result.attempt, "a result") { check(result, session: session) }
            case .error(let failure):
                if holds(session, failure.taskID, attempt: failure.attempt, "an error") { try fail(failure, session: session) }
            case .artifactGet(let request):
                scheduler.active(session.name, at: now())
                serve(request, to: peer)
            case .log(let line): relay(line, from: session)
            case .heartbeat: break
            default: reject(peer, "\(message.type) from a worker", "a worker may not send \(message.type)")
            }
        }
    }

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
        guard let said, !scheduler.holds(session.name, said.task, attempt: said.attempt),
              scheduler.copies.isSuperseded(said.task, attempt: said.attempt, on: session.name) else { return false }
        if case .result = message {
            try journal.note("late-result", ["task": said.task, "attempt": String(said.attempt), "worker": session.name])
            log.info("ignored the late result of attempt \(said.attempt) of \(board.summary(said.task)) from \(session.name): another copy finished first")
        }
        return true
    }

    /// A worker's log line goes into the coordinator's log under the worker's name and the
    /// task's summary, at its own level (an unknown level counts as info), cut to
    /// `WorkerLogLine.maximumLength` characters.
    private func relay(_ line: WorkerLogLine, from session: WorkerSession) {
        var logger = log
        logger[metadataKey: SweepLogHandler.workerKey] = "\(session.name)"
        logger[metadataKey: "host"] = "\(session.hello.host)"
        if let task = line.taskID { logger[metadataKey: SweepLogHandler.taskKey] = "\(board.summary(task))" }
        logger.log(level: Logger.Level(rawValue: line.level) ?? .info, "\(line.message.prefix(WorkerLogLine.maximumLength))")
    }

    /// Seconds as whole and as tenths, for log lines (cheaper than `String(format:)`, which
    /// the socket thread would pay per result).
    static func seconds(_ value: Double) -> String { value.isFinite ? String(Int(value.rounded())) : "\(value)" }
    static func tenths(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        let tenths = Int((abs(value) * 10).rounded())
        return "\(value < 0 ? "-" : "")\(tenths / 10).\(tenths % 10)"
    }
}
