import ArgumentParser
import Coordinator
import Foundation
import TaskRuntime

/// `coordinator fleet-sim`: simulated workers against a running coordinator (docs/cluster.md,
/// "Fleet simulator"); scripts/fleet-sim starts several and measures the coordinator.
struct FleetSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-sim",
        abstract: "Runs simulated workers against a coordinator: the real protocol over its socket, steps that wait a drawn time, real outputs from a template run.")

    @Option(help: "The coordinator's endpoint (RUN_DIR/coordinator.endpoint holds it).") var endpoint: String
    @Option(help: "The run directory of a finished one-seed smoke sweep whose outputs the simulated tasks return.") var template: String
    @Option(help: "Simulated workers in this process.") var workers = 10
    @Option(help: "Worker names are PREFIX-N; give each process its own.") var namePrefix = "sim"
    @Option(help: "cluster.json heartbeatSeconds of the coordinator.") var heartbeatSeconds = 2.5
    @Option(help: "cluster.json missedHeartbeats of the coordinator.") var missedHeartbeats = 3
    @Option(help: "Step time relative to the template's real one.") var timeScale = 1.0
    @Option(help: "Spread of the log-normal step times (σ of the log).") var spread = 0.3
    @Option(help: "Fraction of workers killed once (socket closed for good).") var killed = 0.0
    @Option(help: "Fraction of workers that fall silent once.") var silent = 0.0
    @Option(help: "Fraction of workers whose steps take --slow-factor times longer.") var slow = 0.0
    @Option(help: "How much longer a slow worker's steps take.") var slowFactor = 4.0
    @Option(help: "Fraction of workers that rejoin once on a new connection.") var rejoining = 0.0
    @Option(help: "Seconds from the start within which killed, silent and rejoining workers act.") var faultWindow = 60.0
    @Option(help: "Write the measurements here as JSON (FleetStats).") var stats: String?

    func run() throws {
        var faults = FleetFaults()
        faults.killed = killed
        faults.silent = silent
        faults.slow = slow
        faults.slowFactor = slowFactor
        faults.rejoining = rejoining
        faults.window = faultWindow
        let options = FleetSimulator.Options(endpoint: endpoint, workers: workers, namePrefix: namePrefix, heartbeatSeconds: heartbeatSeconds,
                                             missedHeartbeats: missedHeartbeats, timeScale: timeScale, spread: spread, faults: faults)
        StopSignals.catchFirst()
        let result = try FleetSimulator(options: options, template: try FleetTemplate(runDirectory: URL(fileURLWithPath: template)))
            .run(shouldStop: { StopSignals.requested != nil })
        if let stats { try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: stats)) }
        print("fleet-sim \(namePrefix): \(result.summary)")
    }
}
