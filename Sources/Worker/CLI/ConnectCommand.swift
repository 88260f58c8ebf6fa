import ArgumentParser
import Foundation
import Logging
import Model
import Protocol
import SweepLog
import Worker

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `worker --connect tcp://HOST:PORT`: join a sweep and run its tasks until it ends.
struct ConnectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Joins a sweep's coordinator and runs the tasks it hands out (the default command).",
        discussion: "The worker may join and leave at any time; a task it was running resumes elsewhere from its last epoch checkpoint.")

    @Option(help: "The coordinator's endpoint, e.g. tcp://10.0.0.1:5555.") var connect: String
    @Option(help: "This worker's name in the sweep (default HOST-PID).") var name: String?
    @Option(help: "The cluster.json host this worker counts for (its maxTasks applies).") var group: String?
    @Option(help: "Seconds between heartbeats (the coordinator's cluster.json sets the same).") var heartbeat = 2.5
    @Option(help: "Heartbeats missed before the coordinator counts as lost.") var missedHeartbeats = 3
    @Option(help: "Artifact cache and scratch directory (default ~/.cache/prunesweep/worker-NAME).") var cache: String?
    @Option(help: "The coordinator's CURVE public key file (coordinator.pub), or the key itself as --server-key='KEY' (a key may begin with -); needed when it encrypts.") var serverKey: String?
    @Option(help: "This worker's CURVE secret key file (from `coordinator keygen`).") var key: String?
    @Option(help: "The least severe lines shown: trace, debug, info, notice, warning, error or critical (the coordinator's log gets debug and up whatever this says).")
    var logLevel: Logger.Level = .info
    @Flag(help: .hidden) var exitWithParent = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard connect.hasPrefix("tcp://") else { throw ValidationError("--connect \(connect) is not tcp://HOST:PORT") }
        guard heartbeat >= 0.05 else { throw ValidationError("--heartbeat must be ≥ 0.05 s, got \(heartbeat)") }
        guard missedHeartbeats >= 1 else { throw ValidationError("--missed-heartbeats must be ≥ 1") }
        guard (serverKey == nil) == (key == nil) else { throw ValidationError("--server-key and --key go together: CURVE needs both") }
    }

    func run() throws {
        let (device, lines) = try compute.prepare()
        lines.forEach(say)
        let name = name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        let cacheURL = cache.map { URL(fileURLWithPath: $0) } ?? UserCache.directory.appendingPathComponent("worker-\(name)")
        var curve: (keys: CurveKeyPair, serverKey: String)?
        if let serverKey, let key {
            do {
                let server = serverKey.utf8.count == 40 && !FileManager.default.fileExists(atPath: serverKey)
                    ? serverKey : try CurveKeyPair.firstKey(in: URL(fileURLWithPath: serverKey))
                curve = (try CurveKeyPair.read(secretFile: URL(fileURLWithPath: key)), server)
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
        let options = WorkerOptions(endpoint: connect, name: name, threads: compute.threads, heartbeatSeconds: heartbeat,
                                    missedHeartbeats: missedHeartbeats, cache: cacheURL, exitWithParent: exitWithParent,
                                    group: group, curve: curve, device: device,
                                    deviceDescription: { if case .cuda(let gpu) = device { return gpu.info.summary } else { return "cpu" } }())
        say(curve.map { "CURVE: this worker's key \($0.keys.publicKey)" } ?? "no encryption (no --server-key/--key)")
        let agent = try WorkerAgent(options: options, sink: LogSink(terminalLevel: logLevel, fileLevel: logLevel))
        let status = agent.run()
        if status != 0 { throw ExitCode(status) }
    }
}
