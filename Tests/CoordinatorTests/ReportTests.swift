import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Coordinator

/// The report's figures and tables, on aggregates built here from records with known accuracies.
@Suite struct ReportTests {
    /// The aggregate table alone, as markdown.
    static func aggregateTable(_ rows: [AggregateRow]) -> String {
        let table = ReportTables.aggregate(rows, dense: DenseReference(rows: rows))
        return MarkdownReport.render(ReportDocument(title: "t", blocks: [.table(header: table.header, rows: table.rows)], incomplete: false))
    }

    static let seeds: [UInt64] = [42, 43, 44]

    /// Three seeds of `method` at `density` with these accuracies.
    static func records(_ method: String, _ options: String = "", round: Int = 0, density: Double, target: Double?,
                        accuracies: [Double]) -> [ResultRecord] {
        zip(seeds, accuracies).map { seed, accuracy in
            var record = ResultsTests.record(method, seed: seed, density: density, accuracy: accuracy)
            record.options = options
            record.round = round
            record.targetDensity = target
            return record
        }
    }

    /// A `synflow-iters`-shaped aggregate: T ∈ {1, 10, 100} × density {0.1, 0.05, 0.01}, and dense.
    static func synflowRows() -> [AggregateRow] {
        var records = records("dense", density: 1, target: nil, accuracies: [0.86, 0.87, 0.85])
        for t in [1, 10, 100] {
            for density in [0.1, 0.05, 0.01] {
                let base = 0.8 - 3 * (0.1 - density) - (t == 1 ? 0.05 : 0)
                records += Self.records("synflow", "T=\(t)", density: density, target: density, accuracies: [base, base + 0.01, base - 0.015])
            }
        }
        return AggregateRow.aggregate(records, seeds: seeds)
    }

    /// The x position the SVG gives a tick label.
    static func tickLabelX(_ label: String, in svg: String) -> Double? {
        guard let end = svg.range(of: "\" text-anchor=\"middle\">\(label)</text>")?.lowerBound,
              let start = svg[..<end].range(of: "<text x=\"", options: .backwards)?.upperBound else { return nil }
        return Double(svg[start..<end].prefix { $0 != "\"" })
    }

    @Test func logAxisTicksSitAtTheirLogarithms() throws {
        #expect(PlotAxis.logRange(0.01, 0.1) == 0.01...0.1)
        #expect(PlotAxis.logRange(0.134, 1) == 0.1...1)
        #expect(PlotAxis.logRange(1, 100) == 1...100)
        #expect(PlotAxis.logRange(0.01, 0.10003) == 0.01...0.10003, "a target missed by a few weights stretched the axis a decade")
        #expect(PlotAxis.logTicks(0.01...0.10003) == [0.01, 0.02, 0.05, 0.1])
        #expect(PlotAxis.logTicks(1...100) == [1, 2, 5, 10, 20, 50, 100])
        #expect(PlotAxis.logTicks(0.001...1).count == 4, "three decades: decades only")

        let figure = try #require(ReportFigure.density(Self.synflowRows()))
        let axis = figure.plot.x
        #expect(axis.scale == .log && axis.reversed)
        #expect(axis.ticks.map(\.label) == ["1%", "2%", "5%", "10%"])
        #expect(axis.ticks.map(\.secondary) == ["100×", "50×", "20×", "10×"])
        // Density falls to the right: 10% at the left edge, 1% at the right, 2% at 1 − log10(2) of the way.
        let (_, plot, _) = figure.plot.layout
        let svg = figure.plot.svg()
        let expected: [(String, Double)] = [("10%", 0), ("5%", 1 - log10(5.0)), ("2%", 1 - log10(2.0)), ("1%", 1)]
        for (label, fraction) in expected {
            let x = try #require(Self.tickLabelX(label, in: svg), "no tick \(label)")
            let inset = SVGPlot.inset
            #expect(abs(x - (plot.x + (inset + (1 - 2 * inset) * fraction) * plot.width)) < 0.06, "tick \(label) at \(x)")
        }
    }

    @Test func bandsAreClippedToAccuracies() throws {
        // Seeds this far apart give a 95% interval wider than the room to 100% and to 0%.
        let rows = AggregateRow.aggregate(Self.records("random", density: 0.1, target: 0.1, accuracies: [1.0, 0.97, 0.99])
            + Self.records("random", density: 0.05, target: 0.05, accuracies: [0.0, 0.03, 0.01])
            + Self.records("dense", density: 1, target: nil, accuracies: [0.995, 0.96, 1.0]), seeds: Self.seeds)
        #expect(rows.allSatisfy { $0.accuracy.mean + ($0.accuracy.ci95 ?? 0) > 1 || $0.accuracy.mean - ($0.accuracy.ci95 ?? 0) < 0 },
                "the intervals must leave [0, 1] for this test to mean anything")
        let figure = try #require(ReportFigure.density(rows))
        let points = figure.plot.series.flatMap(\.points)
        #expect(points.compactMap(\.high).max() == 1 && points.compactMap(\.low).min() == 0)
        let reference = try #require(figure.plot.reference)
        #expect(reference.high == 1 && reference.low > 0)
        #expect(figure.plot.y.range.lowerBound >= 0 && figure.plot.y.range.upperBound <= 1)
    }

    @Test func theLegendSitsBesideTheData() throws {
        for figure in ReportFigure.all(rows: Self.synflowRows()) {
            let (size, plot, legend) = figure.plot.layout
            #expect(!legend.overlaps(plot) && legend.x >= plot.maxX, "\(figure.fileName): the legend covers the plot area")
            #expect(legend.maxX <= size.width && legend.maxY <= size.height, "\(figure.fileName): the legend is cut off")
            // Every point lies inside the plot area, so outside it nothing is data.
            for point in figure.plot.series.flatMap(\.points) {
                #expect((0...1).contains(figure.plot.x.fraction(point.x)) && (0...1).contains(figure.plot.y.fraction(point.y)))
            }
        }
    }

    @Test func oneLinePerGroup() throws {
        let rows = Self.synflowRows()
        let density = try #require(ReportFigure.density(rows))
        #expect(density.plot.series.map(\.name) == ["synflow T=1", "synflow T=10", "synflow T=100"])
        #expect(density.plot.series.allSatisfy { $0.points.count == 3 })
        #expect(density.plot.svg().components(separatedBy: "<polyline").count - 1 == 3)
        let iterations = try #require(ReportFigure.iterations(rows))
        #expect(iterations.plot.series.map(\.name) == ["density 10% (10×)", "density 5% (20×)", "density 1% (100×)"])
        #expect(iterations.plot.series.allSatisfy { $0.points.map(\.x) == [1, 10, 100] })
        #expect(iterations.plot.x.ticks.map(\.label) == ["1", "2", "5", "10", "20", "50", "100"])
        // synflow-iters has one method, so no methods figure; no rounds either.
        #expect(ReportFigure.all(rows: rows).map(\.fileName) == ["density.svg", "iterations.svg"])
    }

    @Test func methodsStandSideBySideAtEachDensity() throws {
        var records: [ResultRecord] = []
        for (method, options) in [("random", ""), ("snip", ""), ("synflow", "T=100")] {
            for density in [0.1, 0.01] { records += Self.records(method, options, density: density, target: density, accuracies: [0.7, 0.72, 0.71]) }
        }
        let figure = try #require(ReportFigure.methods(AggregateRow.aggregate(records, seeds: Self.seeds)))
        #expect(figure.plot.series.map(\.name) == ["random", "snip", "synflow T=100"])
        #expect(figure.plot.x.ticks.map(\.label) == ["10% (10×)", "1% (100×)"])
        // At each density the three methods sit apart, in the same order, within the density's slot.
        for slot in [0.0, 1.0] {
            let xs = figure.plot.series.map { $0.points.map(\.x).filter { abs($0 - slot) < 0.5 } }
            #expect(xs.allSatisfy { $0.count == 1 } && xs.map { $0[0] } == xs.map { $0[0] }.sorted() && Set(xs.map { $0[0] }).count == 3)
        }
        #expect(figure.plot.reference == nil, "no dense run, no band")
    }

    @Test func stylesDifferInMarkerAndDashNotOnlyColour() {
        let styles = (0..<7).map(PlotStyle.of)
        #expect(Set(styles.map(\.colour)).count == 7 && Set(styles.map(\.dash)).count == 7)
        #expect(Set(styles.map { "\($0.marker)" }).count == 7)
    }

    @Test func seedsSweepGetsTheStudysTable1AndTheRoundsFigure() throws {
        var records = Self.records("dense", density: 1, target: nil, accuracies: [0.9, 0.91, 0.89])
        for round in 1...3 {
            records += Self.records("lottery-ticket", "layerwise", round: round, density: pow(0.8, Double(round)), target: pow(0.8, Double(round)),
                                    accuracies: [0.9, 0.9, 0.91])
        }
        records += AggregateTests.hanRecords()
        let rows = AggregateRow.aggregate(records, seeds: Self.seeds)
        let table = try #require(ReportTables.table1(rows, dense: DenseReference(rows: rows)))
        #expect(table.header.first == "method" && table.header.count == 8)
        #expect(table.rows.map { $0[0] + " " + $0[1] } == ["dense –", "lottery-ticket 1", "lottery-ticket 2", "lottery-ticket 3", "han 0", "han 1", "han 2"])
        // Lottery Ticket round 2 keeps 64% of the 800 prunable weights: 1000 − 800 + 512 parameters.
        #expect(table.rows[2][2] == "36.00" && table.rows[2][6] == "712")
        let figure = try #require(ReportFigure.rounds(rows))
        #expect(figure.plot.series.map(\.name) == ["han q=1", "lottery-ticket layerwise"])
        #expect(figure.plot.reference?.mean == rows.first { $0.method == "dense" }?.accuracy.mean)
    }

    @Test func perSeedTableHasEveryResultAndItsDrop() {
        let records = Self.records("dense", density: 1, target: nil, accuracies: [0.9, 0.8, 0.85])
            + Self.records("snip", density: 0.1, target: 0.1, accuracies: [0.7, 0.75, 0.8])
        let table = ReportTables.perSeed(records)
        #expect(table.rows.count == 6)
        #expect(table.rows.filter { $0[0] == "snip" }.map { $0[6] } == ["20.00", "5.00", "5.00"])
    }

    @Test func provenanceNamesWhatProducedTheReport() throws {
        var sweep = try #require(SweepSpec.builtIn["synflow-iters"])
        sweep.overrides = try sweep.overrides.setting(["epochs=1", "milestones=[1,2]", "schedule=multistep"])
        let records = Self.records("dense", density: 1, target: nil, accuracies: [0.9, 0.8])
        let plan = try SweepPlan(sweep)
        let run = URL(fileURLWithPath: "/tmp/sweep run")
        let provenance = Provenance(sweep: sweep, preset: try sweep.resolvedPreset(), records: records,
                                    planned: plan.tasks.map(\.labels).filter(\.reported), attempts: [], runDirectory: run)
        #expect(provenance.command == "coordinator --sweep synflow-iters --set epochs=1 --set 'milestones=[1,2]' --set schedule=multistep --run-dir '/tmp/sweep run' --cluster cluster.json",
                "\(provenance.command)")
        let facts = Dictionary(uniqueKeysWithValues: provenance.facts.map { ($0.label, $0.value) })
        #expect(facts["Preset"]?.contains("epochs=1") == true)
        #expect(facts["Dataset"] == "fashion-mnist: 6000 training, 1000 validation, 2000 test images; ResNet18 width 16")
        #expect(facts["Seeds"] == "42 (12 results missing), 43 (12 results missing), 44 (13 results missing)")
        // The builds that trained the results (these records name none) and the report's own commit.
        #expect(facts["Code"] == "results from commit unrecorded (2 results); this report written by commit \(BuildProvenance.coordinator)",
                "\(facts["Code"] ?? "")")

        var custom = sweep
        custom.name = "mine"
        let other = Provenance(sweep: custom, preset: try custom.resolvedPreset(), records: [], planned: [], attempts: [], runDirectory: run)
        #expect(other.command.hasPrefix("coordinator --sweep '/tmp/sweep run/sweep.json' --run-dir '/tmp/sweep run'"), "\(other.command)")
    }

    @Test func htmlIsSelfContained() throws {
        let rows = Self.synflowRows()
        let sweep = try #require(SweepSpec.builtIn["synflow-iters"])
        let provenance = Provenance(sweep: sweep, preset: try sweep.resolvedPreset(), records: [], planned: [], attempts: [],
                                    runDirectory: URL(fileURLWithPath: "runs/synflow-iters"))
        let document = SweepReport.document(provenance: provenance, rows: rows, records: [])
        let html = HTMLReport.render(document)
        #expect(!html.contains("<script") && !html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "").contains("http"))
        #expect(html.components(separatedBy: "<svg ").count - 1 == document.figures.count && document.figures.count == 2)
        let markdown = MarkdownReport.render(document)
        #expect(document.figures.allSatisfy { markdown.contains("](\($0.fileName))") })
        #expect(markdown.contains("## Provenance") && markdown.contains("coordinator --sweep synflow-iters --cluster cluster.json"))
    }
}
