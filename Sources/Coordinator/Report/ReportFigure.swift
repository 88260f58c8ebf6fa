import Foundation

/// One figure of the report: the SVG file it is written to, a caption, and its plot. Every
/// figure is drawn from the aggregate rows alone; which ones a sweep gets depends on what its
/// rows hold (`all(rows:)`), so a custom sweep gets the figures of every kind it contains.
public struct ReportFigure: Sendable {
    /// The file name in the run directory, e.g. `density.svg`.
    public var fileName: String
    /// One sentence saying what the figure answers.
    public var caption: String
    /// The plot.
    public var plot: SVGPlot

    /// The figures `rows` support: accuracy against density for any pruned rows; against
    /// SynFlow's iterations when there are several; against Lottery Ticket round and Han
    /// iteration when either ran; methods side by side when several at-init methods ran; and
    /// accuracy against every numeric sweep axis with three values or more (`axes`).
    public static func all(rows: [AggregateRow]) -> [ReportFigure] {
        densityFigures(rows) + [iterations(rows), rounds(rows), methods(rows)].compactMap { $0 } + axes(rows)
    }

    /// A mean accuracy with its 95% interval clipped to [0, 1], at `x`.
    static func accuracyPoint(x: Double, _ row: AggregateRow) -> SVGPlot.Point {
        let half = row.accuracy.ci95
        return SVGPlot.Point(x: x, y: row.accuracy.mean, low: half.map { Swift.max(0, row.accuracy.mean - $0) },
                             high: half.map { Swift.min(1, row.accuracy.mean + $0) })
    }

    /// The accuracy axis: round ticks around every point, interval and reference, within [0, 1].
    static func accuracyAxis(_ series: [SVGPlot.Series], _ reference: SVGPlot.Reference?) -> PlotAxis {
        let points = series.flatMap(\.points)
        let values = points.flatMap { [$0.y, $0.low ?? $0.y, $0.high ?? $0.y] } + (reference.map { [$0.low, $0.high] } ?? [])
        let low = Swift.max(0, (values.min() ?? 0) - 0.01), high = Swift.min(1, (values.max() ?? 1) + 0.01)
        let (range, ticks) = PlotAxis.linearTicks(low...high)
        let clipped = Swift.max(0, range.lowerBound)...Swift.min(1, range.upperBound)
        return PlotAxis(title: "test accuracy (%)", scale: .linear, range: clipped,
                        ticks: ticks.filter { clipped.contains($0) }.map { PlotAxis.Tick($0, String(format: "%g", ($0 * 1000).rounded() / 10)) })
    }

    /// A density as the percentage of weights kept, e.g. "5%", "0.5%", "51.2%".
    static func percent(_ density: Double) -> String { String(format: "%g%%", (density * 1000).rounded() / 10) }

    /// A density's compression ratio (dense weights per kept weight), e.g. "20×".
    static func ratio(_ density: Double) -> String { String(format: "%g×", (10 / density).rounded() / 10) }

    /// The series' label: method, options when it has any, and the row's sweep axes but those the options already name.
    static func name(_ row: AggregateRow) -> String {
        let axes = (row.axes ?? [:]).filter { axis in !row.options.split(separator: " ").contains { namesAxis($0, axis.key) } }
        return ([row.method] + (row.options.isEmpty ? [] : [row.options]) + axes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
            .joined(separator: " ")
    }

    /// Orders names with their numbers as numbers, so T=20 comes before T=100.
    static func numericOrder(_ a: String, _ b: String) -> Bool { a.compare(b, options: .numeric) == .orderedAscending }
}
