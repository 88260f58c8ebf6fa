import Foundation

extension ReportFigure {
    /// The `baselines` sweep's figure: at each target density, the at-initialisation methods
    /// side by side (offset within the density's slot), mean with 95% whiskers.
    static func methods(_ rows: [AggregateRow]) -> ReportFigure? {
        let atInit = rows.filter { $0.round == 0 && $0.targetDensity != nil && !["dense", "lottery-ticket", "han"].contains($0.method) }
        guard Set(atInit.map(\.method)).count >= 2 else { return nil }
        let densities = Set(atInit.compactMap(\.targetDensity)).sorted(by: >)
        let groups = Dictionary(grouping: atInit, by: name).sorted { numericOrder($0.key, $1.key) }
        let slot = 0.7 / Double(groups.count)
        let series = groups.enumerated().map { index, entry in
            let offset = (Double(index) - Double(groups.count - 1) / 2) * slot
            let points = entry.value.compactMap { row in
                row.targetDensity.flatMap(densities.firstIndex).map { accuracyPoint(x: Double($0) + offset, row) }
            }
            return SVGPlot.Series(name: entry.key, points: points.sorted { $0.x < $1.x }, connected: false)
        }
        let x = PlotAxis(title: "target density (compression ratio)", scale: .linear, range: -0.5...(Double(densities.count) - 0.5),
                         ticks: densities.enumerated().map { PlotAxis.Tick(Double($0.offset), "\(percent($0.element)) (\(ratio($0.element)))") })
        let reference = DenseReference(rows: rows)?.plotReference
        return ReportFigure(fileName: "methods.svg", caption: "Methods side by side at each density: mean test accuracy with 95% whiskers across seeds; the grey band is the dense network.",
                            plot: SVGPlot(title: "Methods at each density", x: x, y: accuracyAxis(series, reference), series: series, reference: reference))
    }
}
