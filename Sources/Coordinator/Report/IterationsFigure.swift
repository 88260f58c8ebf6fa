import Foundation

extension ReportFigure {
    /// The question of the `synflow-iters` sweep: how many SynFlow iterations T each density
    /// needs. Accuracy against T on a log axis, one line per target density.
    /// Whether this figure says all about SynFlow's iterations: no SynFlow row varies another
    /// axis. Otherwise the axis figure draws iterations, one line per combination of the others.
    static func drawsIterations(_ rows: [AggregateRow]) -> Bool {
        rows.filter { $0.method == "synflow" }.allSatisfy { Set(($0.axes ?? [:]).keys).isSubset(of: ["iterations"]) }
    }

    static func iterations(_ rows: [AggregateRow]) -> ReportFigure? {
        guard drawsIterations(rows) else { return nil }
        let synflow = rows.compactMap { row -> (iterations: Double, row: AggregateRow)? in
            guard row.method == "synflow", row.options.hasPrefix("T="), let t = Double(row.options.dropFirst(2)), t > 0 else { return nil }
            return (t, row)
        }
        guard Set(synflow.map(\.iterations)).count >= 2 else { return nil }
        let byDensity = Dictionary(grouping: synflow) { $0.row.targetDensity ?? $0.row.density.mean }
        let series = byDensity.sorted { $0.key > $1.key }.map { density, group in
            SVGPlot.Series(name: "density \(percent(density)) (\(ratio(density)))",
                           points: group.sorted { $0.iterations < $1.iterations }.map { accuracyPoint(x: $0.iterations, $0.row) })
        }
        let values = synflow.map(\.iterations)
        let range = PlotAxis.logRange(values.min() ?? 1, values.max() ?? 10)
        let x = PlotAxis(title: "SynFlow iterations T (log scale)", scale: .log, range: range,
                         ticks: PlotAxis.logTicks(range).map { PlotAxis.Tick($0, String(format: "%g", $0)) })
        let reference = DenseReference(rows: rows)?.plotReference
        return ReportFigure(fileName: "iterations.svg", caption: "Test accuracy against SynFlow's iterations T (log scale), one line per density, mean and 95% band across seeds; the grey band is the dense network.",
                            plot: SVGPlot(title: "Accuracy against SynFlow iterations", x: x, y: accuracyAxis(series, reference), series: series, reference: reference))
    }
}
