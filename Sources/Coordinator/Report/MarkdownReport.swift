/// `report.md`: the report for GitHub's markdown view; figures are linked SVG files beside it.
public enum MarkdownReport {
    /// The markdown of `document`.
    public static func render(_ document: ReportDocument) -> String {
        var lines = ["# \(document.title)", ""]
        for block in document.blocks {
            switch block {
            case .heading(let text): lines += ["## \(text)", ""]
            case .paragraph(let text): lines += [text, ""]
            case .facts(let facts): lines += facts.map { "- **\($0.label)**: \($0.value)" } + [""]
            case .command(let command): lines += ["```sh", command, "```", ""]
            case .table(let header, let rows):
                func line(_ cells: [String]) -> String {
                    "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
                }
                lines += [line(header), "|" + String(repeating: "---|", count: header.count)] + rows.map(line) + [""]
            case .figure(let figure): lines += ["![\(figure.plot.title)](\(figure.fileName))", "", "*\(figure.caption)*", ""]
            }
        }
        return lines.joined(separator: "\n")
    }
}
