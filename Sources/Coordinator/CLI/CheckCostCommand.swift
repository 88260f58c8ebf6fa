import ArgumentParser
import Coordinator
import Foundation

/// `coordinator check-cost RUN_DIR`: the file lanes' work per result, timed on a finished run
/// (docs/fleet-scale.md, output checks at width 64).
struct CheckCost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-cost",
        abstract: "Times the output check of every finished task of a run, as the coordinator checks a result (median of --repeats).")

    @Argument(help: "A run directory with finished tasks.") var runDirectory: String
    @Option(help: "Checks per task; the median is printed.") var repeats = 5

    func run() throws {
        let samples = try OutputCheckTiming.measure(runDirectory: URL(fileURLWithPath: runDirectory), repeats: repeats)
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        for sample in samples {
            let verdict = sample.failure.map { " REFUSED: \($0)" } ?? ""
            print("\(sample.step)\t\(String(format: "%.1f", median(sample.seconds) * 1000)) ms\t\(sample.summary)\(verdict)")
        }
        for step in ["init", "train", "prune"] {
            let medians = samples.filter { $0.step == step }.map { median($0.seconds) }
            guard !medians.isEmpty else { continue }
            print("\(step): \(medians.count) task(s), median \(String(format: "%.1f", median(medians) * 1000)) ms per check")
        }
    }
}
