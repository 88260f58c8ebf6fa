import Foundation

/// Starts the worker processes of a cluster's `local` hosts, restarts a slot whose process
/// died (up to `restarts` times), prints the command for `manual` hosts, and stops them all
/// at the end. Each worker's output goes to `logs/HOST-wN.log` in the run directory.
public final class LocalLauncher {
    private struct Slot {
        var host: ClusterConfig.Host
        var index: Int
        var process: Process?
        var restartsLeft: Int
        var name: String { "\(host.name)-w\(index)" }
    }

    private var slots: [Slot]
    private let cluster: ClusterConfig
    private let endpoint: String
    private let runDirectory: URL
    private let defaultWorker: URL
    private let log: (String) -> Void
    private var stopping = false

    /// A launcher for `cluster`'s workers, which will connect to `endpoint`.
    public init(cluster: ClusterConfig, endpoint: String, runDirectory: URL, log: @escaping (String) -> Void) {
        self.cluster = cluster
        self.endpoint = Self.connectable(endpoint)
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

    /// The `worker` command line of a slot.
    private func arguments(for slot: Slot) -> [String] {
        ["--connect", endpoint, "--name", slot.name, "--threads", String(slot.host.threads),
         "--heartbeat", String(cluster.heartbeatSeconds), "--missed-heartbeats", String(cluster.missedHeartbeats),
         "--cache", runDirectory.appendingPathComponent("workers").appendingPathComponent(slot.name).path]
    }

    /// Starts every local slot and prints the commands of the manual ones.
    public func start() throws {
        for index in slots.indices {
            switch slots[index].host.launcher {
            case .local:
                try launch(index)
            case .manual:
                let slot = slots[index]
                let command = [slot.host.workerPath ?? "worker"] + arguments(for: slot).dropLast(2)
                log("manual host \(slot.host.name): start its worker by hand:  OPENBLAS_NUM_THREADS=\(slot.host.threads) \(command.joined(separator: " "))")
            }
        }
    }

    private func launch(_ index: Int) throws {
        let slot = slots[index]
        let executable = slot.host.workerPath.map { URL(fileURLWithPath: $0) } ?? defaultWorker
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw SweepError.invalid("host \(slot.host.name): worker executable \(executable.path) does not exist or is not executable; build it (swift build -c release) or set workerPath in cluster.json")
        }
        let logs = runDirectory.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let logURL = logs.appendingPathComponent("\(slot.name).log")
        if !FileManager.default.fileExists(atPath: logURL.path) { FileManager.default.createFile(atPath: logURL.path, contents: nil) }
        let logFile = try FileHandle(forWritingTo: logURL)
        logFile.seekToEndOfFile()
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments(for: slot) + ["--exit-with-parent"]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = String(slot.host.threads)
        for (key, value) in slot.host.environment { environment[key] = value }
        process.environment = environment
        process.standardOutput = logFile
        process.standardError = logFile
        process.standardInput = FileHandle.nullDevice
        try process.run()
        slots[index].process = process
        log("started worker \(slot.name) (pid \(process.processIdentifier), \(slot.host.threads) thread(s)), log \(logURL.path)")
    }

    /// Restarts local slots whose process ended while the sweep runs; call it periodically.
    public func maintain() {
        guard !stopping else { return }
        for index in slots.indices {
            guard let process = slots[index].process, !process.isRunning else { continue }
            let name = slots[index].name
            let how = process.terminationReason == .uncaughtSignal ? "was killed by signal \(process.terminationStatus)"
                                                                  : "exited with status \(process.terminationStatus)"
            slots[index].process = nil
            guard slots[index].restartsLeft > 0 else {
                log("worker \(name) \(how) and has used its \(cluster.restarts) restarts; the slot stays empty")
                continue
            }
            slots[index].restartsLeft -= 1
            log("worker \(name) \(how); restarting it (\(slots[index].restartsLeft) restart(s) left)")
            do { try launch(index) } catch { log("cannot restart worker \(name): \(error)") }
        }
    }

    /// The process ids of running local workers, by slot name.
    public var processes: [String: Int32] {
        Dictionary(uniqueKeysWithValues: slots.compactMap { slot in slot.process.map { (slot.name, $0.processIdentifier) } })
    }

    /// Waits up to `grace` seconds for the workers to exit (they were told to), then kills them.
    public func stop(grace: Double) {
        stopping = true
        let deadline = Date().addingTimeInterval(grace)
        while slots.contains(where: { $0.process?.isRunning == true }) && Date() < deadline { usleep(50_000) }
        for slot in slots {
            guard let process = slot.process, process.isRunning else { continue }
            log("worker \(slot.name) did not exit after the shutdown; terminating it")
            process.terminate()
            process.waitUntilExit()
        }
    }
}
