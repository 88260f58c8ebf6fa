import Coordinator
import Foundation
import Synchronization

/// The report's tables and figures (inline SVG, from the report's own renderers) as an HTML
/// fragment for the dashboard, built again only when a result has arrived since the last.
final class ReportFragment: Sendable {
    private let journal: Journal
    private let sweep: SweepSpec
    private let runDirectory: URL
    private let cache = Mutex<(results: Int, html: String)?>(nil)

    /// The fragment of the report of `sweep` in `runDirectory`, from `journal`.
    init(journal: Journal, sweep: SweepSpec, runDirectory: URL) {
        self.journal = journal
        self.sweep = sweep
        self.runDirectory = runDirectory
    }

    /// The fragment as of the journal's results now.
    func html() throws -> String {
        let results = try journal.eventCount("done")
        if let cached = cache.withLock({ $0 }), cached.results == results { return cached.html }
        let document = try SweepOutputs.document(journal: journal, sweep: sweep, runDirectory: runDirectory)
        let html = HTMLReport.body(document).joined(separator: "\n")
        cache.withLock { $0 = (results, html) }
        return html
    }
}
