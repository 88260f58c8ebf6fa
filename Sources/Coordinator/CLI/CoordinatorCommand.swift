import ArgumentParser
import Coordinator
import Foundation
import Model

/// The `coordinator` program: plans a sweep, runs its tasks, writes the results and report.
@main
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Runs a pruning sweep (method × seed × round tasks) and writes results.json, aggregate.json, report.md.",
        subcommands: [RunSweep.self, Status.self],
        defaultSubcommand: RunSweep.self)
}

/// `coordinator --sweep NAME`: run (or resume) a sweep in this process, task after task.
struct RunSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Runs a sweep's tasks one after another in this process; rerun to resume.",
        discussion: "Distributed execution over ZeroMQ workers (cluster.json) is not built yet; this mode runs the same tasks, journal and artifact store on one machine.")

    @Option(help: "A built-in sweep (\(SweepSpec.builtIn.keys.sorted().joined(separator: ", "))) or a sweep JSON file.")
    var sweep: String
    @Option(help: "Run directory (default runs/SWEEP).") var runDir: String?
    @Flag(help: "Accept a changed sweep on an existing run directory and add its new tasks.") var extend = false
    @Option(help: "Override the preset (paper, quick, smoke).") var preset: String?
    @Option(help: "Threads for training.") var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        let line = BLASCoreSelection.ensureBestCore(threads: threads)
        BLAS.threads = threads
        Parallel.threads = threads
        say(line)
        var spec: SweepSpec
        do {
            if let builtIn = SweepSpec.builtIn[sweep] {
                spec = builtIn
            } else if FileManager.default.fileExists(atPath: sweep) {
                spec = try SweepSpec.load(URL(fileURLWithPath: sweep))
            } else {
                throw SweepError.invalid("sweep \(sweep.debugDescription) is neither a built-in (\(SweepSpec.builtIn.keys.sorted().joined(separator: ", "))) nor a file")
            }
            if let preset { spec.preset = preset }
            let plan = try SweepPlan(spec)
            let directory = URL(fileURLWithPath: runDir ?? "runs/\(spec.name)")
            say("sweep \(spec.name) on preset \(spec.preset): \(plan.tasks.count) tasks (\(plan.tasks.filter(\.labels.reported).count) training runs reported) in \(directory.path)")
            let start = Date()
            var done = 0
            let report = try LocalExecutor(sweep: spec, runDirectory: directory).run(extend: extend) { message in
                if message.hasPrefix("done ") || message.hasPrefix("failed ") {
                    done += 1
                    let elapsed = Date().timeIntervalSince(start)
                    say("[\(done)] \(message)  (\(String(format: "%.0f", elapsed)) s)")
                } else if message.hasPrefix("epoch ") || message.hasPrefix("resuming") {
                    say("    \(message)")
                }
            }
            say("report: \(report.path)")
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// `coordinator status RUN_DIR`: where a sweep stands, read from its journal.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prints the task counts of a run directory's journal.")

    @Argument(help: "The run directory.") var runDir: String

    func run() throws {
        let directory = URL(fileURLWithPath: runDir)
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("journal.sqlite").path) else {
            FileHandle.standardError.write(Data("error: \(runDir) has no journal.sqlite; is it a sweep's run directory?\n".utf8))
            throw ExitCode(2)
        }
        let tasks = try Journal(directory: directory).tasks()
        let counts = Dictionary(grouping: tasks, by: \.state).mapValues(\.count)
        say("tasks: \(tasks.count)  done \(counts[.done] ?? 0)  running \(counts[.running] ?? 0)  queued \(counts[.queued] ?? 0)  failed \(counts[.failed] ?? 0)")
        for row in tasks where row.state == .failed || row.state == .running {
            say("  \(row.state.rawValue) \(row.id.prefix(12)) after \(row.attempts) attempt(s)")
        }
    }
}

/// One line to standard output, at once (stdout is block-buffered in pipes and files).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
