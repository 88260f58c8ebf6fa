import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Coordinator

/// A whole sweep on the smoke preset with the real steps, in process.
@Suite struct LocalExecutorTests {
    @Test(.timeLimit(.minutes(10)))
    func smokeSweepRunsEveryTaskOnceAndResumes() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Every kind of figure: density, SynFlow iterations, Lottery Ticket and Han rounds, methods side by side.
        let sweep = SweepSpec(name: "smoke-test", preset: "smoke", seeds: [1, 2], dense: true, lotteryRounds: 1, hanIterations: 2,
                              synflowIterations: [1, 10], synflowDensities: [0.2], baselines: ["random"], baselineDensities: [0.2])
        var resultsWhenReported: [Int] = []
        let report = try LocalExecutor(sweep: sweep, runDirectory: directory).run { message in
            guard message.hasPrefix("done train") else { return }
            let written = (try? JSONDecoder().decode([ResultRecord].self, from: Data(contentsOf: directory.appendingPathComponent("results.json"))))?.count ?? 0
            resultsWhenReported.append(written)
        }
        let journal = try Journal(directory: directory)
        let plan = try SweepPlan(sweep)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        #expect(try journal.attemptCounts().values.allSatisfy { $0 == 1 })
        let records = try JSONDecoder().decode([ResultRecord].self, from: Data(contentsOf: directory.appendingPathComponent("results.json")))
        #expect(records.count == plan.tasks.filter(\.labels.reported).count)
        #expect(records.filter { $0.method == "synflow" }.allSatisfy { abs($0.density - 0.2) < 0.001 })
        #expect(records.filter { $0.method == "lottery-ticket" }.allSatisfy { abs($0.density - 0.8) < 0.001 })
        let aggregate = try JSONDecoder().decode([AggregateRow].self, from: Data(contentsOf: directory.appendingPathComponent("aggregate.json")))
        #expect(aggregate == AggregateRow.aggregate(records, seeds: [1, 2]))
        #expect(aggregate.allSatisfy { $0.accuracy.n == 2 && $0.missingSeeds.isEmpty })
        #expect(try String(contentsOf: report, encoding: .utf8).contains("| synflow | T=10 |"))
        // The outputs follow the results: each training's report already counted it.
        #expect(resultsWhenReported == Array(1...records.count))

        // Every file, every figure drawn, nothing that is not a number.
        let names = ["results.json", "aggregate.json", "sweep.json", "report.md", "report.html",
                     "density.svg", "iterations.svg", "rounds.svg", "methods.svg"]
        let notANumber = try NSRegularExpression(pattern: "\\b(nan|inf|infinity)\\b", options: .caseInsensitive)
        for name in names {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            #expect(!text.isEmpty, "\(name) is empty")
            #expect(notANumber.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil, "\(name) holds NaN or infinity")
            if name.hasSuffix(".svg") {
                #expect(XMLParser(data: Data(text.utf8)).parse(), "\(name) is not well-formed XML")
                #expect(text.contains("<circle") && text.contains("dense "), "\(name) has no data or no dense band")
                #expect(try String(contentsOf: report, encoding: .utf8).contains("](\(name))"), "report.md does not show \(name)")
            }
        }

        // Rerun: nothing is redone.
        _ = try LocalExecutor(sweep: sweep, runDirectory: directory).run()
        #expect(try Journal(directory: directory).attemptCounts().values.allSatisfy { $0 == 1 })
    }
}
