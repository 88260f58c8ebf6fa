import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Model
import TaskRuntime
import Testing
@testable import Coordinator

@Suite struct ResultsTests {
    static func record(_ method: String, seed: UInt64, density: Double, accuracy: Double) -> ResultRecord {
        let sizes = ResultRecord.sizes(parameters: 1000, prunable: 800, remaining: Int(800 * density))
        return ResultRecord(method: method, options: "", seed: seed, round: 0, targetDensity: density, density: density, sparsity: 1 - density,
                            remainingWeights: Int(800 * density), prunableWeights: 800, parameters: 1000,
                            sizeMBDense: sizes.dense, sizeMBSparse: sizes.sparse, bestValidationAccuracy: nil,
                            finalTestAccuracy: accuracy, bestValidationTestAccuracy: nil, epochs: 2, wallSeconds: 1,
                            worker: "w", host: "h", blasCore: "c", configHash: "x", codeVersion: "v")
    }

    @Test func artifactsAreContentAddressedAndChecked() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ArtifactStore(runDirectory: directory)
        let hash = try store.put(Data("weights".utf8))
        #expect(hash == ArtifactStore.hash(Data("weights".utf8)) && store.contains(hash))
        #expect(try store.put(Data("weights".utf8)) == hash)
        #expect(try store.data(hash) == Data("weights".utf8))
        #expect(throws: ArtifactError.self) { try store.put(Data("other".utf8), expected: hash) }
        try Data("tampered".utf8).write(to: store.url(hash))
        #expect(throws: ArtifactError.self) { try store.data(hash) }
        #expect(throws: ArtifactError.missing("ab12")) { try store.data("ab12") }
    }

    /// A training's record carries how the CPU ran it, from its `metrics.json`: the sparse layers,
    /// the column-chunk budgets and the layers evaluated direct.
    @Test func recordCarriesTheRunsEngineChoices() {
        let config = TrainingConfig(dataset: .synthetic, width: 64, synthetic: .init(trainCount: 8, testCount: 8, side: 32))
        var summary = RunSummary(config: config, identity: "x", history: [], bestValidationAccuracy: nil, bestEpoch: nil,
                                 bestValidationTestAccuracy: nil, finalTestAccuracy: 0.5, parameters: 10, prunable: 8, remaining: 8,
                                 blasCore: "c", threads: 2)
        let task = TaskSpec(step: .train(config), inputs: [:],
                            labels: .init(method: "dense", options: "", seed: 42, round: 0, targetDensity: nil, reported: true))
        let plain = SweepOutputs.record(for: task, summary: summary, wallSeconds: 1, worker: "w", host: "h", codeVersion: "v")
        #expect(plain.columnChunks == nil && plain.evaluationDirectLayers == nil && plain.sparseLayers == nil)
        summary.columnChunks = ["layer1.0.conv1": 8]
        summary.evaluationDirectLayers = ["conv1", "layer1.0.conv1"]
        let record = SweepOutputs.record(for: task, summary: summary, wallSeconds: 1, worker: "w", host: "h", codeVersion: "v")
        #expect(record.columnChunks == ["layer1.0.conv1": 8])
        #expect(record.evaluationDirectLayers == ["conv1", "layer1.0.conv1"])
    }

    @Test func aggregateMatchesAnIndependentComputation() {
        let records = [Self.record("synflow", seed: 42, density: 0.1, accuracy: 0.80), Self.record("synflow", seed: 43, density: 0.1, accuracy: 0.84),
                       Self.record("synflow", seed: 44, density: 0.1, accuracy: 0.82), Self.record("random", seed: 42, density: 0.1, accuracy: 0.5)]
        let rows = AggregateRow.aggregate(records, seeds: [42, 43, 44])
        #expect(rows.count == 2)
        let synflow = rows.first { $0.method == "synflow" }!
        #expect(abs(synflow.accuracy.mean - 0.82) < 1e-12 && abs(synflow.accuracy.std! - 0.02) < 1e-12)
        #expect(abs(synflow.accuracy.ci95! - 4.302652730 * 0.02 / 3.0.squareRoot()) < 1e-8)
        #expect(synflow.missingSeeds.isEmpty)
        #expect(rows.first { $0.method == "random" }!.missingSeeds == [43, 44])
        let sizes = ResultRecord.sizes(parameters: 1000, prunable: 800, remaining: 80)
        #expect(sizes.dense == 0.004 && abs(sizes.sparse - (280 * 4 + 100) / 1e6) < 1e-15)
    }

    @Test func reportComesFromTheAggregate() throws {
        let rows = AggregateRow.aggregate([Self.record("synflow", seed: 42, density: 0.05, accuracy: 0.7512),
                                           Self.record("synflow", seed: 43, density: 0.05, accuracy: 0.7600)], seeds: [42, 43, 44])
        let markdown = ReportTests.aggregateTable(rows)
        #expect(markdown.contains("| synflow | – | 0 | 0.9500 | 75.56 ± "))
        #expect(markdown.contains("| 44 |"))
        let svg = try #require(ReportFigure.density(rows)).plot.svg()
        let parser = XMLParser(data: Data(svg.utf8))
        #expect(parser.parse(), "density.svg is not well-formed XML")
        // One density: a marker with 95% whiskers, no line and no band to draw between points.
        #expect(svg.contains("<circle") && svg.contains("<path d=\"M") && !svg.contains("<polyline") && !svg.contains("<polygon"))
    }
}
