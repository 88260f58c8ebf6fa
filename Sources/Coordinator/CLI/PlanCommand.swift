import ArgumentParser
import Coordinator
import Foundation
import TaskRuntime

/// `coordinator plan SWEEP`: what a sweep would run, without running anything.
struct PlanSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Prints what a sweep would run: tasks by kind, trainings, what is shared, and the estimated training compute; runs nothing.",
        discussion: "Speeds come from the run directory's journal (learned from earlier trainings, per device kind) and from --bench files written by worker bench --json.")

    @Argument(help: "A sweep file, a sweep under sweeps/ by name, or a built-in.") var sweep: String
    @Option(help: "Override the preset (paper, quick, smoke).") var preset: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a preset field, as for run.", valueName: "FIELD=VALUE"))
    var settings: [String] = []
    @Option(help: "The run directory whose journal's learned speeds estimate the compute (default runs/NAME when it has a journal).") var runDir: String?
    @Option(help: "A worker bench --json file: its training speed estimates the compute on its device (repeatable).") var bench: [String] = []
    @Flag(help: "Print the summary as one JSON record.") var json = false

    func run() throws {
        do {
            let (spec, plan) = try planSweep(sweep, preset: preset, settings: settings)
            var speeds: [PlanSummary.Speed] = []
            let directory = runDir ?? "runs/\(spec.name)"
            if FileManager.default.fileExists(atPath: directory + "/journal.sqlite") {
                speeds += try PlanSummary.speeds(journal: try Journal(directory: URL(fileURLWithPath: directory)))
            }
            for file in bench { speeds.append(try PlanSummary.speed(bench: URL(fileURLWithPath: file))) }
            let summary = PlanSummary(sweep: spec, plan: plan, speeds: speeds)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                say(String(decoding: try encoder.encode(summary), as: UTF8.self))
            } else {
                summary.lines.forEach(say)
            }
        } catch let error as SweepError {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}
