import Foundation
import Testing
@testable import Coordinator

/// Grouping of results across seeds: by the task's definition, never by a realised density.
@Suite struct AggregateTests {
    static let prunable = 100_000
    static let seeds: [UInt64] = [42, 43, 44]
    /// t(0.975, 2), tabulated, so the interval is checked against an independent value.
    static let t2 = 4.302652729749464

    static func record(_ method: String, _ options: String, seed: UInt64, round: Int, target: Double?, remaining: Int,
                       accuracy: Double) -> ResultRecord {
        let density = Double(remaining) / Double(prunable)
        let sizes = ResultRecord.sizes(parameters: 120_000, prunable: prunable, remaining: remaining)
        return ResultRecord(method: method, options: options, seed: seed, round: round, targetDensity: target,
                            density: density, sparsity: 1 - density, remainingWeights: remaining, prunableWeights: prunable,
                            parameters: 120_000, sizeMBDense: sizes.dense, sizeMBSparse: sizes.sparse, bestValidationAccuracy: nil,
                            finalTestAccuracy: accuracy, bestValidationTestAccuracy: nil, epochs: 2, wallSeconds: 1,
                            worker: "w", host: "h", blasCore: "c", configHash: "x", codeVersion: "v")
    }

    /// Han's three rounds for three seeds, each round's realised density a few weights apart per seed
    /// (round 1 is the 0.6245, 0.6289, 0.6290).
    static let hanRemaining = [[100_000, 100_000, 100_000], [62_450, 62_890, 62_900], [40_110, 40_170, 40_230]]

    static func hanRecords() -> [ResultRecord] {
        seeds.enumerated().flatMap { index, seed in
            hanRemaining.indices.map { round in
                record("han", "q=1", seed: seed, round: round, target: nil, remaining: hanRemaining[round][index],
                       accuracy: 0.80 + 0.01 * Double(index) - 0.02 * Double(round))
            }
        }
    }

    @Test func aHanSweepOfThreeSeedsIsOneGroupPerRound() {
        let rows = AggregateRow.aggregate(Self.hanRecords(), seeds: Self.seeds)
        #expect(rows.map(\.round) == [0, 1, 2])
        for row in rows {
            #expect(row.method == "han" && row.targetDensity == nil)
            #expect(row.accuracy.n == 3 && row.density.n == 3 && row.missingSeeds.isEmpty)
            let densities = Self.hanRemaining[row.round].map { Double($0) / Double(Self.prunable) }
            let mean = densities.reduce(0, +) / 3
            let std = (densities.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot()
            #expect(abs(row.density.mean - mean) < 1e-12 && abs(row.sparsity.mean - (1 - mean)) < 1e-12)
            #expect(abs((row.density.ci95 ?? .nan) - Self.t2 * std / 3.0.squareRoot()) < 1e-9)
            #expect(abs((row.sparsity.ci95 ?? .nan) - (row.density.ci95 ?? .nan)) < 1e-12)
            #expect(abs(row.remainingWeights.mean - mean * Double(Self.prunable)) < 1e-6)
        }
        #expect(rows.filter { $0.round > 0 }.allSatisfy { ($0.density.ci95 ?? 0) > 0 })
    }

    @Test func lotteryTicketAndSynFlowGroupsAreAsWhenKeyedByRealisedDensity() {
        // Lottery Ticket's realised density is the same for every seed; SynFlow's misses its target by a few weights.
        let lotteryRounds: [(round: Int, remaining: Int)] = [(1, 80_000), (2, 64_000), (3, 51_200)]
        let synflowTargets: [(target: Double, remaining: Int)] = [(0.1, 10_000), (0.05, 5_000)]
        var records: [ResultRecord] = []
        for (index, seed) in Self.seeds.enumerated() {
            for step in lotteryRounds {
                records.append(Self.record("lottery-ticket", "layerwise", seed: seed, round: step.round, target: pow(0.8, Double(step.round)),
                                           remaining: step.remaining, accuracy: 0.9 - 0.01 * Double(index + step.round)))
            }
            for step in synflowTargets {
                records.append(Self.record("synflow", "T=100", seed: seed, round: 0, target: step.target, remaining: step.remaining + index - 1,
                                           accuracy: 0.7 + step.target + 0.01 * Double(index)))
            }
        }
        let rows = AggregateRow.aggregate(records, seeds: Self.seeds)
        // The former key, method, options, round and realised density to 4 decimals, computed here.
        func formerKey(_ method: String, _ options: String, _ round: Int, _ density: Double) -> String {
            "\(method) \(options) \(round) \(Int((density * 1e4).rounded()))"
        }
        let former = Dictionary(grouping: records) { (record: ResultRecord) in formerKey(record.method, record.options, record.round, record.density) }
        #expect(rows.count == former.count && rows.count == 5)
        for row in rows {
            let group = former[formerKey(row.method, row.options, row.round, row.density.mean)] ?? []
            let accuracies = group.map { (record: ResultRecord) in record.finalTestAccuracy }
            #expect(group.count == 3 && row.accuracy.n == 3)
            #expect(abs(row.accuracy.mean - accuracies.reduce(0, +) / 3) < 1e-12)
            #expect(row.targetDensity == group.first?.targetDensity)
        }
        let synflowRows = rows.filter { (row: AggregateRow) in row.method == "synflow" }
        #expect(synflowRows.compactMap { (row: AggregateRow) in row.targetDensity } == [0.1, 0.05])
        #expect(rows.filter { (row: AggregateRow) in row.method == "lottery-ticket" }.allSatisfy { (row: AggregateRow) in (row.density.ci95 ?? 1) < 1e-12 })
        #expect(!ReportTests.aggregateTable(rows).contains("± 0.0000"), "a preset density was shown with a zero interval")
    }

    @Test func recordsWrittenBeforeTheTargetFieldTakeItFromThePlan() throws {
        let plan = try SweepPlan(SweepSpec(name: "legacy", preset: "smoke", seeds: [1], hanIterations: 2,
                                           synflowIterations: [10], synflowDensities: [0.2, 0.1]))
        func legacy(_ method: String, _ options: String, round: Int, remaining: Int) throws -> ResultRecord {
            // A record without a target encodes without the field, as every record did before it existed.
            let json = try JSONEncoder().encode(Self.record(method, options, seed: 1, round: round, target: nil, remaining: remaining, accuracy: 0.5))
            #expect(!String(decoding: json, as: UTF8.self).contains("targetDensity"))
            return try JSONDecoder().decode(ResultRecord.self, from: json)
        }
        let records = try [legacy("synflow", "T=10", round: 0, remaining: 20_003), legacy("synflow", "T=10", round: 0, remaining: 9_998),
                           legacy("han", "q=1", round: 1, remaining: 62_450)].map { SweepOutputs.withTargetDensity($0, from: plan) }
        #expect(records.map(\.targetDensity) == [0.2, 0.1, nil])
        #expect(AggregateRow.aggregate(records, seeds: [1]).count == 3)
    }

    @Test func densitiesArePrintedRounded() throws {
        let plan = try SweepPlan(SweepSpec(name: "print", preset: "smoke", seeds: [42], dense: true, lotteryRounds: 3,
                                           synflowIterations: [100], synflowDensities: [0.05]))
        let summaries = plan.tasks.filter(\.labels.reported).map(\.summary)
        #expect(pow(0.8, 3.0) != 0.512, "0.8³ is not 0.512 in binary, so this test would pass without rounding")
        #expect(summaries.contains("train lottery-ticket layerwise seed 42 round 3 d=0.512"), "\(summaries)")
        #expect(summaries.contains("train synflow T=100 seed 42 d=0.05"), "\(summaries)")
        #expect(summaries.contains("train dense seed 42"), "\(summaries)")
    }

    @Test func theReportShowsHanOnceARoundWithItsSpread() throws {
        let rows = AggregateRow.aggregate(Self.hanRecords(), seeds: Self.seeds)
        let markdown = ReportTests.aggregateTable(rows)
        let hanLines = markdown.split(separator: "\n").filter { $0.hasPrefix("| han |") }
        #expect(hanLines.count == 3)
        #expect(hanLines.allSatisfy { $0.contains(" | 3 | – | ") }, "\(hanLines)")
        // Round 1: remaining (62450 + 62890 + 62900) / 3 of 100000, with intervals; round 0 is dense for every seed.
        #expect(markdown.contains("| han | q=1 | 1 | 0.3725 ± "), "\(markdown)")
        #expect(markdown.contains(" | 62747 ± "), "\(markdown)")
        #expect(markdown.contains("| han | q=1 | 0 | 0.0000 | "), "\(markdown)")
        let figure = try #require(ReportFigure.density(rows))
        #expect(figure.plot.series.map(\.name) == ["han q=1"] && figure.plot.series[0].points.count == 3)
    }
}
