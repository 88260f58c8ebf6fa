import ArgumentParser
import BuildStamp
import Coordinator
import Foundation
import Logging
import Model
import Monitoring
import Protocol
import SweepLog
import TaskRuntime

/// The `coordinator` program: plans a sweep, runs its tasks, writes the results and report.
@main
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Runs a pruning sweep (method × seed × round tasks) and writes results.json, aggregate.json, figures, report.md and report.html.",
        version: "commit \(BuildInfo.current)",
        subcommands: [RunSweep.self, PlanSweep.self, Status.self, WriteReport.self, Keygen.self, FleetSim.self, CheckCost.self,
                      BLASProbe.self],
        defaultSubcommand: RunSweep.self)

    /// SIGTERM and SIGINT stop the coordinator whatever its parent blocked (`StopSignals`).
    static func main() {
        StopSignals.restore()
        main(nil)
    }
}

/// `coordinator --sweep NAME`: run (or resume) a sweep on the workers of cluster.json.
struct RunSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Runs a sweep on the workers of cluster.json and writes results, aggregate and report; rerun to resume.",
        discussion: "Without cluster.json the coordinator starts 2 local workers × 1 thread. --in-process runs the same tasks one after another in this process instead, without workers.")

    @Option(help: "A sweep JSON file, a sweep under sweeps/ by name, or a built-in (\(SweepSpec.builtIn.keys.sorted().joined(separator: ", "))); docs/sweeps.md.")
    var sweep: String
    @Flag(help: "Run a sweep of more than \(RunSweep.confirmAbove) trainings (coordinator plan shows the count first).") var yes = false
    @Option(help: "Run directory (default runs/SWEEP).") var runDir: String?
    @Flag(help: "Accept a changed sweep on an existing run directory and add its new tasks.") var extend = false
    @Option(help: "Override the preset (paper, quick, smoke).") var preset: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a preset field, e.g. --set epochs=4 (repeatable; fields as in a sweep file's overrides).", valueName: "FIELD=VALUE"))
    var settings: [String] = []
    @Option(help: "The cluster file (default ./cluster.json, or 2 local workers × 1 thread when there is none).") var cluster: String?
    @Option(help: "The dataset's directory on this machine (fashion-mnist: Debian's by default; cifar10: the binary version's files). Workers get the files from the coordinator.")
    var dataDir: String?
    @Flag(help: "Run the tasks in this process, one after another, without workers.") var inProcess = false
    @Option(help: "Threads for training with --in-process.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Let workers of another build (git commit or uncommitted changes) than this coordinator's join; results.json records each one's.")
    var allowMixedBuilds = false
    @Option(help: "The least severe lines the terminal shows: trace, debug, info, notice, warning, error or critical (RUN_DIR/logs/coordinator.jsonl keeps debug and up, the workers' lines too).")
    var logLevel: Logger.Level = .info
    @Option(help: ArgumentHelp("Where the live dashboard and /metrics listen (port 0: any free one). Off loopback every request needs the token printed at start.", valueName: "HOST:PORT"))
    var dashboard = "127.0.0.1:8080"
    @Flag(help: "Serve no dashboard and no /metrics.") var noDashboard = false
    @Flag(help: "After the sweep, keep the dashboard and /metrics up until SIGINT (Ctrl-C) or SIGTERM (a last scrape then sees the final counts).")
    var keepServing = false
    @Option(help: ArgumentHelp("The most tasks at once for a worker this coordinator did not start (--connect, manual hosts); a hello claiming more gets this many (default: its GPUs × its host's slotsPerGPU, 1 on a CPU). Launched workers run 1 each.", valueName: "N"))
    var maxWorkerSlots: Int?

    /// Trainings above which a sweep runs only with `--yes`.
    static let confirmAbove = 2000

    func validate() throws {
        if let maxWorkerSlots, maxWorkerSlots < 1 { throw ValidationError("--max-worker-slots must be at least 1, got \(maxWorkerSlots)") }
        guard noDashboard || (try? DashboardAddress(dashboard)) != nil else { throw ValidationError("\(DashboardError.invalidAddress(dashboard))") }
    }

    func run() throws {
        do {
            let (spec, plan) = try planSweep(sweep, preset: preset, settings: settings)
            let trainings = plan.tasks.filter { if case .train = $0.step { true } else { false } }.count
            if trainings > Self.confirmAbove && !yes {
                throw SweepError.invalid("the sweep plans \(trainings) trainings, more than \(Self.confirmAbove); look at coordinator plan \(sweep) and pass --yes to run it")
            }
            let dataDirectory = dataDir.map { URL(fileURLWithPath: $0) }
            do {
                _ = try spec.resolvedPreset().training.dataset.files(in: dataDirectory)
            } catch let error as ModelError {
                throw SweepError.invalid("cannot start the sweep: \(error)")
            }
            let directory = URL(fileURLWithPath: runDir ?? "runs/\(spec.name)")
            let sink = LogSink(terminalLevel: logLevel)
            let log = Logger(label: "coordinator", sink: sink)
            let clusterConfig = try loadCluster(log)
            // Only a sweep that can start writes to its run directory.
            do { try sink.openFile(directory.appendingPathComponent("logs/coordinator.jsonl")) } catch {
                throw SweepError.invalid("cannot write the log \(directory.path)/logs/coordinator.jsonl: \(error); is the run directory writable?")
            }
            // Only a sweep run in this process multiplies matrices here; the workers choose their
            // own BLAS core (and a coordinator that measured for nothing would delay them).
            if inProcess { log.info("\(BLASCoreSelection.ensureBestCore(threads: threads))") }
            BLAS.threads = threads
            Parallel.threads = threads
            log.info("build: commit \(BuildInfo.current)")
            log.info("sweep \(spec.name) on preset \(spec.preset): \(plan.tasks.count) tasks (\(plan.tasks.filter(\.labels.reported).count) training runs reported) in \(directory.path)")
            let start = Date()
            if inProcess {
                log.info("\(GEMMEngineSelection.choose(threads: threads))")
                try runInProcess(spec, directory: directory, dataDirectory: dataDirectory, start: start, log: log)
            } else {
                let live = LiveSweepState(), metrics = SweepMetrics()
                var server: DashboardServer?
                // From here a SIGTERM or SIGINT stops the workers and the dashboard first.
                StopSignals.catchFirst()
                let outcome = try SweepCoordinator(sweep: spec, runDirectory: directory, cluster: clusterConfig, dataDirectory: dataDirectory,
                                                   allowMixedBuilds: allowMixedBuilds, maxWorkerSlots: maxWorkerSlots)
                    .run(extend: extend, log: log, monitor: noDashboard ? nil : MonitorFanout([live, metrics]),
                         stopRequested: { StopSignals.requested.map(StopSignals.name) }) { _ in
                        guard !noDashboard else { return }
                        server = serveDashboard(spec, directory: directory, live: live, metrics: metrics, log: log)
                    }
                if outcome.stoppedBy != nil, let signal = StopSignals.requested {
                    server?.stop()
                    throw ExitCode(128 + signal)
                }
                let overheads = outcome.overheads.sorted()
                if !overheads.isEmpty {
                    let line = String(format: "coordinator overhead per task (dispatch to result, beyond the step): median %.3f s, max %.3f s over %d tasks",
                                      overheads[overheads.count / 2], overheads[overheads.count - 1], overheads.count)
                    log.info("\(line)")
                }
                log.info("rejected frames: \(outcome.rejectedFrames)")
                log.info("refused messages: \(outcome.refusedMessages)")
                log.info("\(String(format: "wall time: %.1f s", Date().timeIntervalSince(start)))")
                log.info("report: \(outcome.report.path)")
                if let server, keepServing {
                    log.notice("the sweep is over; the dashboard stays at \(server.url) until SIGINT (Ctrl-C) or SIGTERM (--keep-serving)")
                    while StopSignals.requested == nil { usleep(100_000) }
                    log.notice("\(StopSignals.requested.map(StopSignals.name) ?? ""): the dashboard stops")
                }
                server?.stop()
                if outcome.failed > 0 {
                    FileHandle.standardError.write(Data("error: \(outcome.failed) task(s) did not finish; see coordinator status \(directory.path)\n".utf8))
                    throw ExitCode(1)
                }
            }
        } catch let error as SweepError {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// Starts the dashboard once the journal is recorded; a dashboard that cannot start is a
    /// warning, never the end of the sweep.
    private func serveDashboard(_ spec: SweepSpec, directory: URL, live: LiveSweepState, metrics: SweepMetrics, log: Logger) -> DashboardServer? {
        do {
            let journal = try Journal(directory: directory)
            let server = try DashboardServer(address: try DashboardAddress(dashboard), journal: journal, sweep: spec, runDirectory: directory,
                                             live: live, metrics: metrics, logger: log)
            log.notice("dashboard: \(server.url) (metrics: \(server.url.split(separator: "?").first ?? "")metrics)")
            if let token = server.token {
                log.notice("dashboard token: \(token) (it listens off loopback: every request needs ?token=TOKEN or Authorization: Bearer TOKEN)")
            }
            return server
        } catch {
            log.warning("no dashboard: \(error); the sweep goes on without it")
            return nil
        }
    }

    private func loadCluster(_ log: Logger) throws(SweepError) -> ClusterConfig {
        if let cluster { return try ClusterConfig.load(URL(fileURLWithPath: cluster)) }
        if FileManager.default.fileExists(atPath: "cluster.json") { return try ClusterConfig.load(URL(fileURLWithPath: "cluster.json")) }
        log.info("no cluster.json here: 2 local workers × 1 thread")
        return .thisMachine
    }

    private func runInProcess(_ spec: SweepSpec, directory: URL, dataDirectory: URL?, start: Date, log: Logger) throws {
        var done = 0
        let report = try LocalExecutor(sweep: spec, runDirectory: directory, dataDirectory: dataDirectory).run(extend: extend) { message in
            if message.hasPrefix("done ") || message.hasPrefix("failed ") {
                done += 1
                log.info("[\(done)] \(message)  (\(String(format: "%.0f", Date().timeIntervalSince(start))) s)")
            } else if message.hasPrefix("epoch ") || message.hasPrefix("resuming") {
                log.info("    \(message)")
            } else {
                log.debug("\(message)")
            }
        }
        log.info("report: \(report.path)")
    }
}

/// `coordinator status RUN_DIR`: where a sweep stands, read from its journal; with `--watch`,
/// again every few seconds in place, for a terminal without a browser.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prints where a sweep stands, from its run directory's journal: task counts, what runs where, what failed.")

    @Argument(help: "The run directory.") var runDir: String
    @Flag(help: "Refresh in place until nothing is queued or running (or until interrupted).") var watch = false
    @Option(help: "Seconds between refreshes with --watch.") var every = 2.0

    func validate() throws {
        guard every >= 0.1 else { throw ValidationError("--every must be at least 0.1 s, got \(every)") }
    }

    func run() throws {
        let journal = try openJournal(runDir)
        guard watch else { return try report(journal).lines.forEach(say) }
        while true {
            let (lines, open) = try report(journal)
            // Home and clear, then the report: the terminal shows one screen that changes in place.
            let stamp = LogEntry.localTime(Date().timeIntervalSince1970)
            FileHandle.standardOutput.write(Data(("\u{1B}[H\u{1B}[2J" + "\(runDir) at \(stamp) (every \(every) s; Ctrl-C stops)\n" + lines.joined(separator: "\n") + "\n").utf8))
            if !open { return }
            Thread.sleep(forTimeInterval: every)
        }
    }

    /// The status lines, and whether any task is still queued or running.
    private func report(_ journal: Journal) throws -> (lines: [String], open: Bool) {
        let tasks = try journal.tasks()
        let counts = Dictionary(grouping: tasks, by: \.state).mapValues(\.count)
        var lines = ["tasks: \(tasks.count)  done \(counts[.done] ?? 0)  running \(counts[.running] ?? 0)  queued \(counts[.queued] ?? 0)  failed \(counts[.failed] ?? 0)"]
        let open = Dictionary(try journal.attempts().filter { $0.ended == nil }.map { ($0.task, $0) }) { $1 }
        for row in tasks where row.state == .failed || row.state == .running {
            let summary = (try? JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8)))?.summary ?? String(row.id.prefix(12))
            if row.state == .running, let attempt = open[row.id] {
                let minutes = (Date().timeIntervalSince1970 - attempt.started) / 60
                lines.append("  running \(summary) on \(attempt.worker), attempt \(attempt.number), for \(String(format: "%.1f", minutes)) min\(row.checkpoint == nil ? "" : " (has a checkpoint)")")
            } else {
                lines.append("  \(row.state.rawValue) \(summary) after \(row.attempts) attempt(s)")
            }
        }
        lines += try CopiesStatus.lines(journal)
        if counts[.running] ?? 0 > 0 { lines.append("(if their coordinator is no longer running, rerun its command: they resume from their checkpoints)") }
        return (lines, (counts[.running] ?? 0) + (counts[.queued] ?? 0) > 0)
    }
}

/// `coordinator report RUN_DIR`: the outputs written again from the journal, without running anything.
struct WriteReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Writes results.json, aggregate.json, the figures, report.md and report.html again from a run directory's journal; runs nothing.")

    @Argument(help: "The run directory.") var runDir: String

    func run() throws {
        let directory = URL(fileURLWithPath: runDir)
        let journal = try openJournal(runDir)
        guard let sweep = try journal.sweep() else {
            FileHandle.standardError.write(Data("error: the journal in \(runDir) records no sweep; run one there with coordinator --sweep first\n".utf8))
            throw ExitCode(2)
        }
        say("report: \(try SweepOutputs.write(journal: journal, sweep: sweep, runDirectory: directory).path)")
    }
}

/// `coordinator keygen --out keys/NAME`: a CURVE key pair for the coordinator or a worker.
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Writes a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).",
        discussion: "Make one for the coordinator (security.coordinatorKey) and one per worker or group of workers; list the workers' .pub lines in the file named by security.authorizedKeys. See docs/cluster.md.")

    @Option(help: "The path without extension, e.g. keys/coordinator.") var out: String

    func run() throws {
        let base = URL(fileURLWithPath: out)
        for file in [base.appendingPathExtension("key"), base.appendingPathExtension("pub")] where FileManager.default.fileExists(atPath: file.path) {
            FileHandle.standardError.write(Data("error: \(file.path) exists; remove it first or choose another --out\n".utf8))
            throw ExitCode(2)
        }
        let keys = try CurveKeyPair.generate()
        try keys.write(to: base)
        say("wrote \(base.path).key (secret) and \(base.path).pub")
        say("public key: \(keys.publicKey)")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The sweep `name` names (`SweepSpec.named`) with the command line's preset and `--set` fields, and its plan.
func planSweep(_ name: String, preset: String?, settings: [String]) throws(SweepError) -> (SweepSpec, SweepPlan) {
    var spec = try SweepSpec.named(name)
    if let preset { spec.preset = preset }
    spec.overrides = try spec.overrides.setting(settings)
    return (spec, try SweepPlan(spec))
}

/// One line to standard output, at once (stdout is block-buffered in pipes and files).
/// The journal of the run directory `runDir`; exit status 2, with a line saying so, when it
/// is not a sweep's run directory (opening would create an empty journal there).
func openJournal(_ runDir: String) throws -> Journal {
    let directory = URL(fileURLWithPath: runDir)
    guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("journal.sqlite").path) else {
        FileHandle.standardError.write(Data("error: \(runDir) has no journal.sqlite; is it a sweep's run directory?\n".utf8))
        throw ExitCode(2)
    }
    return try Journal(directory: directory)
}

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Hidden: what `BLASCoreSelection` runs in a child process per candidate core (for sweeps run
/// with --in-process); prints "CORE GFLOPS".
struct BLASProbe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "blas-probe", shouldDisplay: false)

    func run() throws {
        guard let line = BLASCoreSelection.probeLine() else { throw ExitCode(1) }
        print(line)
    }
}
