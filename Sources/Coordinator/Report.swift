import Foundation

/// `report.md` (the study's Table 1 shape) and `curve.svg` (accuracy vs sparsity per method
/// with 95% bands), both drawn from the aggregate rows only: no number is typed by hand.
public enum Report {
    /// The markdown report.
    public static func markdown(sweep: String, rows: [AggregateRow]) -> String {
        func percent(_ value: Double) -> String { String(format: "%.2f", 100 * value) }
        // A figure the seeds agree on at the printed precision (a preset density) gets no "± 0.0000".
        func spread(_ statistics: SeedStatistics, _ format: (Double) -> String) -> String {
            guard let halfWidth = statistics.ci95.map(format), halfWidth != format(0) else { return format(statistics.mean) }
            return format(statistics.mean) + " ± " + halfWidth
        }
        var lines = [
            "# Sweep \(sweep)", "",
            "Accuracy is the final test accuracy. Sparsity, accuracy and remaining weights are means across seeds,",
            "± the 95% confidence half-width (Student t) where the seeds differ at the printed precision.", "",
            "| method | options | round | sparsity | accuracy (%) | n | missing seeds | remaining weights | size MB (dense / sparse) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        // Options compare with their numbers as numbers, so T=20 comes before T=100.
        for row in rows.sorted(by: { a, b in
            if a.method != b.method { return a.method < b.method }
            if a.options != b.options { return a.options.compare(b.options, options: .numeric) == .orderedAscending }
            return a.sparsity.mean < b.sparsity.mean
        }) {
            let sparsity = spread(row.sparsity) { String(format: "%.4f", $0) }
            let remaining = spread(row.remainingWeights) { String(Int($0.rounded())) }
            let missing = row.missingSeeds.isEmpty ? "–" : row.missingSeeds.map(String.init).joined(separator: ", ")
            lines.append("| \(row.method) | \(row.options.isEmpty ? "–" : row.options) | \(row.round) | \(sparsity) | \(spread(row.accuracy, percent)) | \(row.accuracy.n) | \(missing) | \(remaining) | \(String(format: "%.2f", row.sizeMBDense)) / \(String(format: "%.2f", row.sizeMBSparse)) |")
        }
        lines += ["", "![accuracy vs sparsity](curve.svg)", ""]
        return lines.joined(separator: "\n")
    }

    /// The SVG plot: one line per method and options, a band of ±CI where there are ≥ 2 seeds.
    public static func svg(rows: [AggregateRow]) -> String {
        let (width, height, margin) = (720.0, 440.0, 60.0)
        let series = Dictionary(grouping: rows) { $0.options.isEmpty ? $0.method : "\($0.method) \($0.options)" }
        let ordered = series.sorted { $0.key.compare($1.key, options: .numeric) == .orderedAscending }
        let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
        func x(_ sparsity: Double) -> Double { margin + sparsity * (width - 2 * margin) }
        func y(_ accuracy: Double) -> Double { height - margin - accuracy * (height - 2 * margin) }
        var svg = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                   "<line x1=\"\(margin)\" y1=\"\(y(0))\" x2=\"\(x(1))\" y2=\"\(y(0))\" stroke=\"black\"/>",
                   "<line x1=\"\(margin)\" y1=\"\(y(0))\" x2=\"\(margin)\" y2=\"\(y(1))\" stroke=\"black\"/>",
                   "<text x=\"\(width / 2)\" y=\"\(height - 15)\" text-anchor=\"middle\">sparsity (fraction of prunable weights removed)</text>",
                   "<text x=\"15\" y=\"\(height / 2)\" transform=\"rotate(-90 15 \(height / 2))\" text-anchor=\"middle\">test accuracy</text>"]
        for tick in stride(from: 0.0, through: 1.0, by: 0.2) {
            svg.append("<text x=\"\(x(tick))\" y=\"\(y(0) + 18)\" text-anchor=\"middle\">\(String(format: "%.1f", tick))</text>")
            svg.append("<text x=\"\(margin - 8)\" y=\"\(y(tick) + 4)\" text-anchor=\"end\">\(String(format: "%.1f", tick))</text>")
        }
        for (index, (name, group)) in ordered.enumerated() {
            let points = group.sorted { $0.sparsity.mean < $1.sparsity.mean }
            let colour = colours[index % colours.count]
            let upper = points.map { "\(x($0.sparsity.mean)),\(y($0.accuracy.mean + ($0.accuracy.ci95 ?? 0)))" }
            let lower = points.reversed().map { "\(x($0.sparsity.mean)),\(y($0.accuracy.mean - ($0.accuracy.ci95 ?? 0)))" }
            if points.contains(where: { $0.accuracy.ci95 != nil }) {
                svg.append("<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(colour)\" fill-opacity=\"0.15\" stroke=\"none\"/>")
            }
            let line = points.map { "\(x($0.sparsity.mean)),\(y($0.accuracy.mean))" }.joined(separator: " ")
            svg.append("<polyline points=\"\(line)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"/>")
            for point in points { svg.append("<circle cx=\"\(x(point.sparsity.mean))\" cy=\"\(y(point.accuracy.mean))\" r=\"3\" fill=\"\(colour)\"/>") }
            svg.append("<text x=\"\(width - margin + 5 - 150)\" y=\"\(margin + 16 * Double(index))\" fill=\"\(colour)\">\(name)</text>")
        }
        svg.append("</svg>")
        return svg.joined(separator: "\n")
    }
}
