import Foundation

extension ReportFigure {
    /// The `seeds` sweep's figure, as in the study: accuracy against Lottery Ticket round and
    /// Han iteration, one line per method, with the dense band.
    static func rounds(_ rows: [AggregateRow]) -> ReportFigure? {
        let iterative = rows.filter { $0.method == "lottery-ticket" || $0.method == "han" }
        guard !iterative.isEmpty else { return nil }
        let series = Dictionary(grouping: iterative, by: name).sorted { numericOrder($0.key, $1.key) }.map { name, group in
            SVGPlot.Series(name: name, points: group.sorted { $0.round < $1.round }.map { accuracyPoint(x: Double($0.round), $0) })
        }
        let last = Double(iterative.map(\.round).max() ?? 1)
        let (range, ticks) = PlotAxis.linearTicks(0...Swift.max(last, 1), count: min(Int(last) + 1, 10))
        let x = PlotAxis(title: "Lottery Ticket round / Han iteration", scale: .linear, range: range,
                         ticks: ticks.map { PlotAxis.Tick($0, String(format: "%g", $0)) })
        let reference = DenseReference(rows: rows)?.plotReference
        return ReportFigure(fileName: "rounds.svg", caption: "Test accuracy against Lottery Ticket round and Han iteration, mean and 95% band across seeds; the grey band is the dense network.",
                            plot: SVGPlot(title: "Accuracy against round and iteration", x: x, y: accuracyAxis(series, reference), series: series, reference: reference))
    }
}
