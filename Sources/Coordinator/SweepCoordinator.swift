import Foundation
import Logging
import Protocol
import TaskRuntime

/// A whole distributed sweep: records the plan in the run directory's journal, binds the
/// ROUTER, starts the cluster's workers, serves tasks until the sweep is finished, stops the
/// workers and writes results, aggregate and report. Rerunning it on the same run directory
/// resumes: finished tasks are never redone, interrupted ones resume from their checkpoints.
public struct SweepCoordinator {
    /// The sweep, its run directory and the cluster that runs it.
    public let sweep: SweepSpec, runDirectory: URL, cluster: ClusterConfig
    /// Where the coordinator reads the dataset it serves to the workers (nil: its default).
    public let dataDirectory: URL?
    /// Whether workers of another build than the coordinator's may join.
    public let allowMixedBuilds: Bool
    /// The most tasks at once for a worker the coordinator did not start (nil: `WorkerSlotLimit`'s default).
    public let maxWorkerSlots: Int?

    /// What a finished sweep leaves for the caller to report.
    public struct Outcome: Sendable {
        /// The report's path.
        public var report: URL
        /// Tasks that failed for good (and so their dependants never ran).
        public var failed: Int
        /// Frames the coordinator rejected.
        public var rejectedFrames: Int
        /// Messages refused for coming from a worker that did not hold the task.
        public var refusedMessages: Int
        /// Per task: seconds from dispatch to accepted result beyond the worker's step time.
        public var overheads: [Double]
        /// What stopped the sweep before its end (`stopRequested`'s answer); nil when it ran to its end.
        public var stoppedBy: String? = nil
    }

    /// A coordinator of `sweep` in `runDirectory` over `cluster`, serving the dataset of
    /// `dataDirectory`; `allowMixedBuilds` lets workers of another build join; `maxWorkerSlots`
    /// bounds the workers it does not start.
    public init(sweep: SweepSpec, runDirectory: URL, cluster: ClusterConfig, dataDirectory: URL? = nil, allowMixedBuilds: Bool = false,
                maxWorkerSlots: Int? = nil) {
        self.allowMixedBuilds = allowMixedBuilds
        self.maxWorkerSlots = maxWorkerSlots
        self.sweep = sweep
        self.runDirectory = runDirectory
        self.cluster = cluster
        self.dataDirectory = dataDirectory
    }

    /// The coordinator's ROUTER, bound to `bind` (a CURVE server with `curve`), and its endpoint.
    static func listen(on bind: String, curve: CurveKeyPair?) throws -> (ZMQSocket, String) {
        let socket = try ZMQSocket(.router)
        try socket.set(ZMQSocket.routerMandatory, 1)
        // A fleet connects at once (at the start, and again after a restart): beyond the
        // backlog the kernel drops a connection's handshake and the worker's TCP retries it a
        // second later (1,000 simulated workers: 620 joined 1–2 s late with ZeroMQ's 100).
        try socket.set(ZMQSocket.backlog, listenBacklog)
        if let curve { try socket.makeCurveServer(curve) }
        return (socket, try socket.bind(bind))
    }

    /// Nice steps of the report writer below the socket thread (weight 110 against 1,024).
    static let reportNiceness: Int32 = 10

    /// Connections queued to be accepted: a fleet of a few thousand workers connecting at once.
    static let listenBacklog: Int32 = 4096

    /// Runs the sweep to its end. `log` takes every line of live progress, `monitor` (the
    /// dashboard and metrics) every event and the journal's commit times; `onBound` hears the
    /// endpoint once the journal is recorded and the socket bound. `stopRequested` is asked
    /// four times a second; when it names a reason (a signal) the workers it started are
    /// stopped and the sweep returns unfinished, kept in the journal for a rerun to resume.
    public func run(extend: Bool = false, log: Logger, monitor: (any SweepMonitor)? = nil, stopRequested: () -> String? = { nil },
                    onBound: (String) -> Void = { _ in }) throws -> Outcome {
        let plan = try SweepPlan(sweep)
        let journal = try Journal(directory: runDirectory)
        try journal.record(sweep: sweep, plan: plan, extend: extend)
        let requeued = try journal.requeueInterrupted()
        if !requeued.isEmpty { log.notice("resuming: \(requeued.count) interrupted task(s) back in the queue; finished tasks are kept") }
        let store = try ArtifactStore(runDirectory: runDirectory)
        let secrets = SlotSecrets(cluster: cluster)
        var options = SweepServer.Options(cluster: cluster, slotSecrets: secrets, allowMixedBuilds: allowMixedBuilds, maxWorkerSlots: maxWorkerSlots)
        let dataset = try sweep.resolvedPreset().training.dataset
        options.datasetFiles = try DatasetShipment.stage(dataset, from: dataDirectory, into: store)
        if !options.datasetFiles.isEmpty {
            let bytes = options.datasetFiles.values.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: store.url($1).path)[.size] as? Int) ?? 0) }
            log.info("dataset \(dataset.rawValue): \(options.datasetFiles.count) files, \(String(format: "%.1f", Double(bytes) / 1e6)) MB, served to workers that lack them (fetched once, cached by hash)")
        }
        if let monitor {
            options.monitor = monitor
            try journal.timeCommits { monitor.journalCommitted(seconds: $0) }
        }
        let server = try SweepServer(journal: journal, store: store, options: options, log: log, interrupted: requeued)
        let reports = server.reports
        let security = try WireSecurity(cluster: cluster)
        let zap = try security.map { security in
            try ZAPHandler(authorized: security.authorized) { address, key, allowed in
                guard !allowed else { return }
                reports.report("refused-worker", reason: "key not authorised",
                               line: "refused a worker from \(address): its key \(key) is not authorised (\(security.authorizedSource)); it gets no task and no artifact")
            }
        }
        defer { zap?.stop() }
        let bind = cluster.bind
        var onTurn: (@Sendable (Double) -> Void)?
        if let monitor { onTurn = { seconds in monitor.loopTurned(seconds: seconds) } }
        let loop: SocketLoop
        do {
            loop = try SocketLoop(setUp: { try Self.listen(on: bind, curve: security?.coordinator) }, onMessage: { server.receive($0, senderKey: $1) }, onTick: { server.tick() }, onHandshake: { event in
                // A peer with the wrong keys retries every few hundred milliseconds.
                let why: String
                switch event {
                case .protocolError(let code): why = "ZMTP error 0x\(String(code, radix: 16)): a worker with the wrong coordinator key, or without CURVE"
                case .failed(let errno): why = "errno \(errno): the peer hung up, as a worker without CURVE keys does"
                case .succeeded, .refused: return
                }
                reports.report("handshake-failed", reason: why, line: "refused a peer that failed the CURVE handshake (\(why))")
            }, onTurn: onTurn)
        } catch {
            throw SweepError.invalid("cannot listen on \(bind) (cluster.json field bind): \(error); is another coordinator running? Use another port, or * for any free one")
        }
        server.attach(loop.send, wake: { loop.wake() })
        // Atomic, because scripts (and the tests) poll for the file and read it at once.
        let endpointFile = runDirectory.appendingPathComponent("coordinator.endpoint")
        do {
            try Data((loop.endpoint + "\n").utf8).write(to: endpointFile, options: .atomic)
        } catch {
            log.warning("could not write \(endpointFile.path) (\(error)); workers started by hand need the endpoint \(loop.endpoint)")
        }
        if let security {
            log.info("listening on \(loop.endpoint) (CURVE: encrypted and authenticated; coordinator key \(security.coordinator.publicKey), \(security.authorized.count) authorised worker key(s))")
        } else {
            log.info("listening on \(loop.endpoint) (no encryption: \(cluster.bindsLoopback ? "loopback only" : "security.mode is none"))")
        }
        onBound(loop.endpoint)
        let launcher = WorkerLauncher(cluster: cluster, endpoint: loop.endpoint, runDirectory: runDirectory,
                                     curve: security.flatMap { s in s.workerKeyFile.map { (s.coordinator.publicKey, $0) } }, secrets: secrets, log: log)
        do { try launcher.start() } catch {
            loop.stop()
            throw error
        }
        // The report reads through a connection of its own, so its reads never wait for, nor
        // hold up, the server's connection (the journal writes ahead: readers see the last commit).
        let reader = try Journal(directory: runDirectory)
        // The report is written on a thread below the socket thread's priority: a fleet's
        // report takes seconds of a core, which the socket thread's turns would otherwise share.
        let reportWriter = BackgroundThread(name: "prunesweep-report", niceness: Self.reportNiceness)
        let written = Locked((done: try reader.eventCount("done"), at: Date(), took: 0.0))
        while !server.waitUntilFinished(seconds: 0.25) {
            if reportWriter.isIdle {
                do { try reader.checkpoint() } catch { log.warning("cannot checkpoint the journal's write-ahead log (it grows until the next try): \(error)") }
            }
            if let reason = stopRequested() {
                log.notice("\(reason): stopping the sweep and the workers this coordinator started; finished tasks are kept, rerun the same command to resume")
                launcher.stop(grace: 0, why: "is stopped with the coordinator (\(reason))")
                loop.stop()
                reportWriter.waitUntilIdle()
                reports.flushAll()
                return Outcome(report: runDirectory.appendingPathComponent("report.md"), failed: try journal.tasks().filter { $0.state != .done }.count,
                               rejectedFrames: server.rejectedFrames, refusedMessages: server.refusedMessages, overheads: server.overheads,
                               stoppedBy: reason)
            }
            launcher.maintain()
            // The report follows the results (at most every 5 s, and at most a tenth of the
            // time: a fleet's report of 20,000 results takes seconds of a core to write), so a
            // long sweep can be read while it runs.
            let last = written.with { $0 }
            if reportWriter.isIdle, Date().timeIntervalSince(last.at) >= max(5, 10 * last.took), let done = try? reader.eventCount("done"), done != last.done {
                let sweep = sweep, runDirectory = runDirectory
                reportWriter.async {
                    let clock = Date()
                    do { try SweepOutputs.write(journal: reader, sweep: sweep, runDirectory: runDirectory, plan: plan) } catch {
                        log.error("cannot rewrite the report in \(runDirectory.path) (the sweep goes on; it is written again at the end): \(error)")
                    }
                    written.with { $0 = (done, Date(), Date().timeIntervalSince(clock)) }
                }
            }
            if launcher.allFailed && server.liveWorkers == 0 {
                launcher.stop(grace: 0)
                loop.stop()
                throw SweepError.invalid("no worker is running and none can be started: every launch failed (see the lines above); the sweep is kept, rerun the same command once the hosts are fixed")
            }
        }
        launcher.stop(grace: 10)
        loop.stop()
        reportWriter.waitUntilIdle()
        reports.flushAll()
        let report = try SweepOutputs.write(journal: journal, sweep: sweep, runDirectory: runDirectory, plan: plan)
        let failed = try journal.tasks().filter { $0.state != .done }.count
        return Outcome(report: report, failed: failed, rejectedFrames: server.rejectedFrames,
                       refusedMessages: server.refusedMessages, overheads: server.overheads)
    }
}
