import Foundation

extension ReportFigure {
    /// Accuracy against density on a log axis falling to the right (100% → 1% kept, as the
    /// Lottery Ticket papers plot it), the compression ratio above (SynFlow's 10⁰…10³), one
    /// line per method and options, with the dense band.
    /// The density figure; one per method when all methods together would draw more than eight lines.
    static func densityFigures(_ rows: [AggregateRow]) -> [ReportFigure] {
        let pruned = rows.filter { $0.method != "dense" && $0.density.mean > 0 }
        guard Set(pruned.map(name)).count > 8 else { return [density(rows)].compactMap { $0 } }
        return Set(pruned.map(\.method)).sorted().compactMap { method in
            density(rows.filter { $0.method == method || $0.method == "dense" }, method: method)
        }
    }

    static func density(_ rows: [AggregateRow], method: String? = nil) -> ReportFigure? {
        let pruned = rows.filter { $0.method != "dense" && $0.density.mean > 0 }
        guard !pruned.isEmpty else { return nil }
        let series = Dictionary(grouping: pruned, by: name).sorted { numericOrder($0.key, $1.key) }.map { name, group in
            SVGPlot.Series(name: name, points: group.sorted { $0.density.mean > $1.density.mean }.map { accuracyPoint(x: $0.density.mean, $0) })
        }
        let densities = pruned.map(\.density.mean)
        let range = PlotAxis.logRange(densities.min() ?? 0.01, densities.max() ?? 1)
        let x = PlotAxis(title: "weights remaining (density, log scale)", scale: .log, range: range, reversed: true,
                         ticks: PlotAxis.logTicks(range).map { PlotAxis.Tick($0, percent($0), secondary: ratio($0)) },
                         secondaryTitle: "compression ratio")
        let reference = DenseReference(rows: rows)?.plotReference
        return ReportFigure(fileName: method.map { "density-\($0).svg" } ?? "density.svg",
                            caption: "Test accuracy against the density kept (log scale), mean and 95% band across seeds per "
                                + (method.map { "line of \($0)" } ?? "method") + "; the grey band is the dense network.",
                            plot: SVGPlot(title: "Accuracy against density" + (method.map { ": \($0)" } ?? ""), x: x, y: accuracyAxis(series, reference), series: series, reference: reference))
    }
}
