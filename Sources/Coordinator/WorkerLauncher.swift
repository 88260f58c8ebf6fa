import Foundation
import Logging
import TaskRuntime

/// Starts the workers of cluster.json: `local` hosts as child processes, `ssh` hosts as one
/// ssh session per slot, `slurm` hosts as one batch job per host, and prints the command for
/// `manual` hosts. With a `bundle`, hosts without `workerPath` run the bundle's worker: ssh
/// hosts get a copy when they lack it, Slurm hosts find it unpacked in their shared
/// `bundleDirectory`, manual hosts are told how to fetch it. A slot whose process died is started again (up to `restarts` times); a
/// launch that fails is reported with the host's name. At the end the processes are waited
/// for (they were told to shut down) and the Slurm jobs cancelled. Each worker's output goes
/// to `logs/` in the run directory.
public final class WorkerLauncher {
    private struct Slot {
        var host: ClusterConfig.Host
        var index: Int
        var process: Process?
        var restartsLeft: Int
        var name: String { "\(host.name)-w\(index)" }
    }

    private var slots: [Slot]
    private var jobs: [(host: String, job: SlurmJob)] = []
    /// Per host name: the worker of the bundle installed there.
    private var bundledWorkers: [String: String] = [:]
    /// Per Slurm host without a shared bundle directory: the batch lines that sbcast the bundle.
    private var slurmPrologues: [String: [String]] = [:]
    private let cluster: ClusterConfig
    private let endpoint: String
    private let runDirectory: URL
    private let defaultWorker: URL
    private let curve: (serverKey: String, workerKeyFile: String)?
    private let secrets: SlotSecrets
    private let log: Logger
    private var stopping = false

    /// A launcher for `cluster`'s workers, which will connect to `endpoint` (or the cluster's
    /// `advertise` address); with `curve`,
    /// they handshake with the coordinator's public key and the given secret key file. Each
    /// launched slot gets its secret from `secrets` in its environment.
    public init(cluster: ClusterConfig, endpoint: String, runDirectory: URL, curve: (serverKey: String, workerKeyFile: String)? = nil,
                secrets: SlotSecrets = SlotSecrets(), log: Logger) {
        self.cluster = cluster
        self.secrets = secrets
        self.curve = curve
        self.endpoint = cluster.advertise ?? Self.connectable(endpoint)
        self.runDirectory = runDirectory
        self.log = log
        defaultWorker = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("worker")
        slots = cluster.hosts.flatMap { host in
            (1...host.workers).map { Slot(host: host, index: $0, process: nil, restartsLeft: cluster.restarts) }
        }
    }

    /// A bound wildcard address is not one a worker can connect to; on this machine it is loopback.
    public static func connectable(_ endpoint: String) -> String {
        endpoint.replacingOccurrences(of: "tcp://0.0.0.0:", with: "tcp://127.0.0.1:")
            .replacingOccurrences(of: "tcp://*:", with: "tcp://127.0.0.1:")
    }

    /// The `worker` arguments of a host's slots (the name given separately); local workers
    /// keep their cache in the run directory, others in their own default place.
    private func arguments(for host: ClusterConfig.Host, name: String) -> [String] {
        ["--connect", endpoint, "--name", name, "--group", host.name, "--threads", String(host.threads),
         "--heartbeat", String(cluster.heartbeatSeconds), "--missed-heartbeats", String(cluster.missedHeartbeats),
         // Its output is a file (RUN_DIR/logs/NAME.log), where the per-epoch detail belongs.
         "--log-level", "debug"]
            // One word with its option: a Z85 key may begin with "-", which would read as an option.
            + (curve.map { ["--server-key=\($0.serverKey)", "--key", $0.workerKeyFile] } ?? [])
            + (host.device.map { ["--device", $0] } ?? [])
            + (host.launcher == .local ? ["--cache", runDirectory.appendingPathComponent("workers").appendingPathComponent(name).path] : [])
    }

    /// The environment of a host's slot `index` (from 1): threads, the host's variables, its
    /// GPU, and the slot's secret.
    private func environment(for host: ClusterConfig.Host, slot index: Int) -> [String: String] {
        var environment = ["OPENBLAS_NUM_THREADS": String(host.threads)]
        if let secret = secrets["\(host.name)-w\(index)"] { environment[SlotSecret.environmentKey] = secret }
        for (key, value) in host.environment { environment[key] = value }
        if let gpus = host.gpus, !gpus.isEmpty { environment["CUDA_VISIBLE_DEVICES"] = gpus[(index - 1) % gpus.count] }
        return environment
    }

    /// The worker executable of a host's slots: its `workerPath`, else its bundle's (nil: the default).
    private func workerPath(for host: ClusterConfig.Host) -> String? {
        host.workerPath ?? bundledWorkers[host.name]
    }

    /// Puts the cluster's bundle on every host that runs it, once per host; returns the hosts
    /// it could not be put on (their slots stay empty).
    private func installBundle() throws -> Set<String> {
        guard let path = cluster.bundle else { return [] }
        let bundle = try WorkerBundle(path: path)
        let megabytes = String(format: "%.1f MB", Double(bundle.bytes) / 1e6)
        var failed = Set<String>()
        for host in cluster.hosts where host.workerPath == nil {
            let base = host.bundleDirectory ?? WorkerBundle.defaultBase
            do {
                let installed: WorkerBundle.Installed
                switch host.launcher {
                case .local: continue
                case .slurm:
                    guard let shared = host.bundleDirectory else {
                        slurmPrologues[host.name] = bundle.sbcastLines()
                        bundledWorkers[host.name] = bundle.worker(under: WorkerBundle.nodeLocalBase)
                        log.info("host \(host.name): its Slurm job copies bundle \(bundle.sha256.prefix(12)) (\(megabytes)) to its nodes with sbcast and unpacks it under \(WorkerBundle.nodeLocalBase) where a node lacks it")
                        continue
                    }
                    let absolute = URL(fileURLWithPath: NSString(string: shared).expandingTildeInPath).standardizedFileURL.path
                    installed = try bundle.installHere(under: absolute, host: host)
                    bundledWorkers[host.name] = bundle.worker(under: absolute)
                case .manual:
                    log.info("manual host \(host.name): \(bundle.manualSteps(under: base))")
                    bundledWorkers[host.name] = bundle.worker(under: base)
                    continue
                case .ssh:
                    installed = try bundle.install(overSSH: host, under: base)
                    bundledWorkers[host.name] = bundle.worker(under: base)
                }
                switch installed {
                case .cached:
                    log.info("bundle \(bundle.sha256.prefix(12)) is already on host \(host.name): \(bundledWorkers[host.name] ?? "")")
                case .copied(let seconds):
                    log.info("copied bundle \(bundle.sha256.prefix(12)) (\(megabytes)) to host \(host.name) in \(String(format: "%.1f", seconds)) s: \(bundledWorkers[host.name] ?? "")")
                }
            } catch {
                log.warning("\(error); its workers are not started")
                failed.insert(host.name)
            }
        }
        return failed
    }

    /// Starts every local and ssh slot, submits the Slurm jobs and prints the manual commands.
    public func start() throws {
        let unprepared = try installBundle()
        for index in slots.indices {
            if unprepared.contains(slots[index].host.name) {
                slots[index].restartsLeft = 0
                continue
            }
            switch slots[index].host.launcher {
            case .local, .ssh:
                try launch(index)
            case .slurm:
                continue
            case .manual:
                let slot = slots[index]
                let command = SSHCommand.line(environment: environment(for: slot.host, slot: slot.index),
                                              worker: workerPath(for: slot.host) ?? "worker", arguments: arguments(for: slot.host, name: slot.name))
                log.info("manual host \(slot.host.name): start its worker by hand:  \(command)")
            }
        }
        for host in cluster.hosts where host.launcher == .slurm && !unprepared.contains(host.name) {
            let job = try SlurmJob.submit(host: host, worker: workerPath(for: host) ?? defaultWorker.path,
                                          arguments: arguments(for: host, name: "\(host.name)-w$((SLURM_PROCID+1))"),
                                          environment: environment(for: host, slot: 1),
                                          prologue: slurmPrologues[host.name] ?? [],
                                          logs: runDirectory.appendingPathComponent("logs"))
            jobs.append((host.name, job))
            log.info("submitted Slurm job \(job.id) for host \(host.name): \(host.workers) worker(s) × \(host.threads) thread(s)")
        }
    }

    private func launch(_ index: Int) throws {
        let slot = slots[index]
        let logURL = self.logURL(of: slot.name)
        try FileManager.default.createDirectory(at: logURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: logURL.path) { FileManager.default.createFile(atPath: logURL.path, contents: nil) }
        let logFile = try FileHandle(forWritingTo: logURL)
        logFile.seekToEndOfFile()
        let process = Process()
        if slot.host.launcher == .ssh {
            // -tt gives the remote worker a terminal, so it is hung up when the session ends.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ssh", "-tt", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"] + slot.host.sshOptions
                + [slot.host.address ?? slot.host.name,
                   SSHCommand.remote(worker: workerPath(for: slot.host) ?? "worker", arguments: arguments(for: slot.host, name: slot.name),
                                     environment: environment(for: slot.host, slot: slot.index), directory: slot.host.workingDirectory)]
        } else {
            let executable = slot.host.workerPath.map { URL(fileURLWithPath: $0) } ?? defaultWorker
            guard FileManager.default.isExecutableFile(atPath: executable.path) else {
                throw SweepError.invalid("host \(slot.host.name): worker executable \(executable.path) does not exist or is not executable; build it (swift build -c release) or set workerPath in cluster.json")
            }
            process.executableURL = executable
            process.arguments = arguments(for: slot.host, name: slot.name) + ["--exit-with-parent"]
            process.environment = ProcessInfo.processInfo.environment.merging(environment(for: slot.host, slot: slot.index)) { $1 }
        }
        process.standardOutput = logFile
        process.standardError = logFile
        process.standardInput = FileHandle.nullDevice
        try process.run()
        slots[index].process = process
        let via = slot.host.launcher == .ssh ? " over ssh to \(slot.host.address ?? slot.host.name)" : ""
        log.info("started worker \(slot.name)\(via) (pid \(process.processIdentifier), \(slot.host.threads) thread(s)), log \(logURL.path)")
    }

    /// Restarts local slots whose process ended while the sweep runs; call it periodically.
    public func maintain() {
        guard !stopping else { return }
        for index in slots.indices {
            guard let process = slots[index].process, !process.isRunning else { continue }
            let name = slots[index].name
            let how = process.terminationReason == .uncaughtSignal ? "was killed by signal \(process.terminationStatus)"
                : slots[index].host.launcher == .ssh ? SSHCommand.explain(status: process.terminationStatus, host: slots[index].host)
                : "exited with status \(process.terminationStatus)"
            let said = lastLine(ofLog: logURL(of: name)).map { " (its log ends: \($0))" } ?? ""
            slots[index].process = nil
            guard slots[index].restartsLeft > 0 else {
                log.warning("worker \(name) \(how)\(said) and has used its \(cluster.restarts) restarts; the slot stays empty")
                continue
            }
            slots[index].restartsLeft -= 1
            log.warning("worker \(name) \(how)\(said); restarting it (\(slots[index].restartsLeft) restart(s) left)")
            do { try launch(index) } catch { log.warning("cannot restart worker \(name): \(error)") }
        }
    }

    private func logURL(of name: String) -> URL {
        runDirectory.appendingPathComponent("logs").appendingPathComponent("\(name).log")
    }

    /// The last line a worker wrote, which names why it ended when it could not start (a
    /// refused argument, a missing library); nil when its log is empty or unreadable.
    private func lastLine(ofLog url: URL) -> String? {
        guard let file = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? file.close() }
        guard let end = try? file.seekToEnd() else { return nil }
        try? file.seek(toOffset: end > 2048 ? end - 2048 : 0)
        let tail = String(decoding: (try? file.readToEnd()) ?? Data(), as: UTF8.self)
        let line = tail.split(whereSeparator: \.isNewline).last.map { $0.trimmingCharacters(in: .whitespaces) }
        return line.flatMap { $0.isEmpty ? nil : String($0.prefix(300)) }
    }

    /// Whether every slot the coordinator starts has failed for good (no manual or Slurm hosts
    /// that could still bring workers).
    public var allFailed: Bool {
        slots.allSatisfy { ($0.host.launcher == .local || $0.host.launcher == .ssh) && $0.process == nil && $0.restartsLeft == 0 }
    }

    /// Waits up to `grace` seconds for the workers to exit (they were told to), then
    /// terminates the rest, logging that each `why`; one that outlives SIGTERM by 5 s is killed.
    public func stop(grace: Double, why: String = "did not exit after the shutdown") {
        stopping = true
        for (host, job) in jobs {
            if let problem = job.cancel() { log.warning("cannot cancel Slurm job \(job.id) of host \(host): \(problem)") } else { log.info("cancelled Slurm job \(job.id) of host \(host)") }
        }
        let deadline = Date().addingTimeInterval(grace)
        while slots.contains(where: { $0.process?.isRunning == true }) && Date() < deadline { usleep(50_000) }
        let running = slots.filter { $0.process?.isRunning == true }
        for slot in running {
            log.warning("worker \(slot.name) \(why); terminating it")
            slot.process?.terminate()
        }
        let killAt = Date().addingTimeInterval(5)
        while running.contains(where: { $0.process?.isRunning == true }) && Date() < killAt { usleep(50_000) }
        for slot in running {
            guard let process = slot.process else { continue }
            if process.isRunning {
                log.warning("worker \(slot.name) outlived SIGTERM by 5 s; killing it")
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
        }
    }
}
