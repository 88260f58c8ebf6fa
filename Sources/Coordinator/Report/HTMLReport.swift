/// `report.html`: the same content as `report.md` in one self-contained file (figures inline,
/// style inline, no script, nothing fetched), readable offline in any browser. While results
/// are missing it asks the browser to reload it every 30 s, since the sweep rewrites it.
public enum HTMLReport {
    /// The HTML of `document`.
    public static func render(_ document: ReportDocument) -> String {
        var out = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
                   "<title>\(escape(document.title))</title>"]
        if document.incomplete { out.append("<meta http-equiv=\"refresh\" content=\"30\">") }
        out += ["<style>",
                "body { font-family: DejaVu Sans, Arial, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #111; }",
                "table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }",
                "th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; }",
                "pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; } figure { margin: 1.5em 0; } figcaption { font-style: italic; }",
                "dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; } dt { font-weight: bold; } dd { margin: 0; }",
                "</style>", "</head>", "<body>", "<h1>\(escape(document.title))</h1>"]
        out += body(document)
        out += ["</body>", "</html>", ""]
        return out.joined(separator: "\n")
    }

    /// The HTML of the document's blocks alone (the dashboard shows them inside its page).
    public static func body(_ document: ReportDocument) -> [String] {
        var out: [String] = []
        for block in document.blocks {
            switch block {
            case .heading(let text): out.append("<h2>\(escape(text))</h2>")
            case .paragraph(let text): out.append("<p>\(escape(text))</p>")
            case .facts(let facts): out += ["<dl>"] + facts.map { "<dt>\(escape($0.label))</dt><dd>\(escape($0.value))</dd>" } + ["</dl>"]
            case .command(let command): out.append("<pre><code>\(escape(command))</code></pre>")
            case .table(let header, let rows):
                out.append("<table><thead><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>")
                out += rows.map { "<tr>" + $0.map { "<td>\(escape($0))</td>" }.joined() + "</tr>" }
                out.append("</tbody></table>")
            case .figure(let figure):
                out += ["<figure>", figure.plot.svg(), "<figcaption>\(escape(figure.caption))</figcaption>", "</figure>"]
            }
        }
        return out
    }

    static func escape(_ text: String) -> String { SVGFormat.escape(text) }
}
