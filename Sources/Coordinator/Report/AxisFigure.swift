import Foundation
import TaskRuntime

extension ReportFigure {
    /// Accuracy against each numeric sweep axis with at least three values, one line per
    /// method, options (without the axis), round, target density and the other axes' values.
    /// More than eight lines are split into small multiples of at most eight, method by method.
    static func axes(_ rows: [AggregateRow]) -> [ReportFigure] {
        let names = Set(rows.flatMap { ($0.axes ?? [:]).keys }).sorted()
        var figures: [ReportFigure] = []
        for axis in names where axis != "iterations" || !drawsIterations(rows) {
            let points = rows.compactMap { row in row.axes?[axis]?.number.map { (x: $0, row: row) } }
            let values = Set(points.map(\.x))
            guard values.count >= 3 else { continue }
            func line(_ row: AggregateRow) -> String {
                var parts = [row.method]
                let options = row.options.split(separator: " ").filter { !$0.hasPrefix("\(axis)=") && !Self.namesAxis($0, axis) }
                if !options.isEmpty { parts.append(options.joined(separator: " ")) }
                if row.method != "dense" && row.round > 0 { parts.append("round \(row.round)") }
                if let density = row.targetDensity, density < 1, row.method != "lottery-ticket" { parts.append("d=\(percent(density))") }
                parts += (row.axes ?? [:]).filter { $0.key != axis }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                return parts.joined(separator: " ")
            }
            let series = Dictionary(grouping: points) { line($0.row) }.sorted { numericOrder($0.key, $1.key) }.map { name, group in
                SVGPlot.Series(name: name, points: group.sorted { $0.x < $1.x }.map { accuracyPoint(x: $0.x, $0.row) })
            }
            let low = values.min() ?? 0, high = values.max() ?? 1
            let x: PlotAxis
            if low > 0 && high / low >= 10 {
                let range = PlotAxis.logRange(low, high)
                x = PlotAxis(title: "\(axis) (log scale)", scale: .log, range: range, ticks: PlotAxis.logTicks(range).map { PlotAxis.Tick($0, String(format: "%g", $0)) })
            } else {
                let (range, ticks) = PlotAxis.linearTicks(low...Swift.max(high, low + 1e-9), count: Swift.min(values.count, 8))
                x = PlotAxis(title: axis, scale: .linear, range: range, ticks: ticks.map { PlotAxis.Tick($0, String(format: "%g", $0)) })
            }
            // Small multiples: each method's lines together, at most eight to a panel.
            var panels: [[SVGPlot.Series]] = []
            if series.count <= 8 {
                panels = [series]
            } else {
                for method in Set(series.map { $0.name.split(separator: " ").first.map(String.init) ?? "" }).sorted() {
                    let own = series.filter { ($0.name.split(separator: " ").first.map(String.init) ?? "") == method }
                    panels += stride(from: 0, to: own.count, by: 8).map { Array(own[$0..<Swift.min($0 + 8, own.count)]) }
                }
            }
            for (number, panel) in panels.enumerated() {
                let suffix = panels.count == 1 ? "" : "-\(number + 1)"
                let title = "Accuracy against \(axis)" + (panels.count == 1 ? "" : " (\(number + 1) of \(panels.count))")
                figures.append(ReportFigure(
                    fileName: "axis-\(axis)\(suffix).svg",
                    caption: "Test accuracy against \(axis), mean and 95% band across seeds, one line per combination of the other varying options and axes" + (panels.count == 1 ? "." : "; panel \(number + 1) of \(panels.count)."),
                    plot: SVGPlot(title: title, x: x, y: accuracyAxis(panel, nil), series: panel, reference: nil)))
            }
        }
        return figures
    }

    /// Whether an options word stands for `axis` (the labels write rewindEpoch as rewind=K, iterations as T=N).
    static func namesAxis(_ word: Substring, _ axis: String) -> Bool {
        switch axis {
        case "rewindEpoch": word.hasPrefix("rewind=")
        case "iterations": word.hasPrefix("T=")
        case "quality": word.hasPrefix("q=")
        case "examplesPerClass": word.hasPrefix("examples=")
        case "scope": word == "layerwise" || word == "global" || word.hasPrefix("scope=")
        case "schedule": word.hasPrefix("schedule=")
        case "keepClassifier": word == "keep-classifier"
        default: false
        }
    }
}
