/// A report's content as blocks, so `report.md` and `report.html` say the same thing: each
/// renderer only decides how a block looks.
public struct ReportDocument: Sendable {
    /// One piece of content.
    public enum Block: Sendable {
        case heading(String)
        case paragraph(String)
        /// Label and value pairs (the provenance).
        case facts([(label: String, value: String)])
        /// A shell command to copy.
        case command(String)
        case table(header: [String], rows: [[String]])
        case figure(ReportFigure)
    }

    /// The title and the blocks in order.
    public var title: String, blocks: [Block]
    /// Whether results are still missing (the HTML view then reloads itself).
    public var incomplete: Bool

    /// The figures, in order (each is also written as its own SVG file).
    public var figures: [ReportFigure] {
        blocks.compactMap { block in
            guard case .figure(let figure) = block else { return nil }
            return figure
        }
    }
}
