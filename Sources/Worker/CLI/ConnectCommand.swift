import ArgumentParser
import Foundation
import Model
import Worker

/// `worker --connect tcp://HOST:PORT`: join a sweep and run its tasks until it ends.
struct ConnectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Joins a sweep's coordinator and runs the tasks it hands out (the default command).",
        discussion: "The worker may join and leave at any time; a task it was running resumes elsewhere from its last epoch checkpoint.")

    @Option(help: "The coordinator's endpoint, e.g. tcp://10.0.0.1:5555.") var connect: String
    @Option(help: "This worker's name in the sweep (default HOST-PID).") var name: String?
    @Option(help: "Seconds between heartbeats (the coordinator's cluster.json sets the same).") var heartbeat = 2.5
    @Option(help: "Heartbeats missed before the coordinator counts as lost.") var missedHeartbeats = 3
    @Option(help: "Artifact cache and scratch directory (default ~/.cache/prunesweep/worker-NAME).") var cache: String?
    @Flag(help: .hidden) var exitWithParent = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard connect.hasPrefix("tcp://") else { throw ValidationError("--connect \(connect) is not tcp://HOST:PORT") }
        guard heartbeat >= 0.05 else { throw ValidationError("--heartbeat must be ≥ 0.05 s, got \(heartbeat)") }
        guard missedHeartbeats >= 1 else { throw ValidationError("--missed-heartbeats must be ≥ 1") }
    }

    func run() throws {
        say(try compute.prepare())
        let name = name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        let cacheURL = cache.map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".cache/prunesweep/worker-\(name)")
        let options = WorkerOptions(endpoint: connect, name: name, threads: compute.threads, heartbeatSeconds: heartbeat,
                                    missedHeartbeats: missedHeartbeats, cache: cacheURL, exitWithParent: exitWithParent)
        let agent = try WorkerAgent(options: options) { line in say("[\(name)] \(line)") }
        let status = agent.run()
        if status != 0 { throw ExitCode(status) }
    }
}
