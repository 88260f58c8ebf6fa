import BuildStamp

/// The builds a sweep's results come from, in one line for the report: the commit (with
/// "dirty" when the tree had uncommitted changes) and how many results each trained.
public enum BuildProvenance {
    /// The coordinator's own build, e.g. `3f2a9c1e0b7d` or `3f2a9c1e0b7d (dirty, changes 5e1f…)`.
    public static var coordinator: String { BuildInfo.current.description }

    /// E.g. "commit 3f2a9c1e0b7d (36 results)", or with mixed builds
    /// "commits 3f2a9c1e0b7d (30 results), 0c5e77a01b2d dirty (6 results)"; results written
    /// before builds were recorded count as "unrecorded".
    public static func line(for records: [ResultRecord]) -> String {
        var counts: [String: Int] = [:]
        for record in records {
            let name = record.commit.map { String($0.prefix(12)) + (record.dirty == true ? " dirty" : "") } ?? "unrecorded"
            counts[name, default: 0] += 1
        }
        let parts = counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
            .map { "\($0.key) (\($0.value) result\($0.value == 1 ? "" : "s"))" }
        return (parts.count == 1 ? "commit " : "commits ") + parts.joined(separator: ", ")
    }
}
