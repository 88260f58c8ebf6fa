import Foundation

/// The dense network's accuracy across seeds, the reference every pruned result is read
/// against: drawn as a horizontal band, and subtracted for the tables' accuracy drop.
public struct DenseReference: Sendable, Equatable {
    /// The dense row's accuracy statistics.
    public var accuracy: SeedStatistics
    /// Every dense row (one per recipe when the sweep varies preset fields).
    public var rows: [AggregateRow]

    /// The reference from the aggregate's dense rows (the band is the first); nil when the sweep has no dense run.
    public init?(rows: [AggregateRow]) {
        let dense = rows.filter { $0.method == "dense" }
        guard let first = dense.first else { return nil }
        accuracy = first.accuracy
        self.rows = dense
    }

    /// The dense row of `row`'s recipe: the one whose axes `row` has with equal values, else the first.
    func dense(for row: AggregateRow) -> AggregateRow? {
        rows.first { dense in (dense.axes ?? [:]).allSatisfy { row.axes?[$0.key] == $0.value } } ?? rows.first
    }

    /// The band: mean ± 95% interval, clipped to the accuracies that exist.
    public var plotReference: SVGPlot.Reference {
        let half = accuracy.ci95 ?? 0
        return SVGPlot.Reference(name: String(format: "dense %.1f%%", 100 * accuracy.mean) + (accuracy.ci95 == nil ? "" : " ± 95% CI"),
                                 mean: accuracy.mean, low: Swift.max(0, accuracy.mean - half), high: Swift.min(1, accuracy.mean + half))
    }

    /// How far `row` falls below dense, in percentage points (negative: above it).
    public func drop(of row: AggregateRow) -> Double { 100 * ((dense(for: row)?.accuracy.mean ?? accuracy.mean) - row.accuracy.mean) }
}
