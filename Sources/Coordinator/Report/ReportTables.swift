import Foundation
import TaskRuntime

/// The report's tables, as header and rows of text: the aggregate across seeds, the study's
/// Table 1 for Lottery Ticket and Han, and every seed's own result.
enum ReportTables {
    static func percent(_ value: Double) -> String { String(format: "%.2f", 100 * value) }

    /// The sweep axes that appear in `axes`, sorted: one column each.
    static func axisNames(_ axes: [[String: AxisValue]?]) -> [String] { Set(axes.flatMap { ($0 ?? [:]).keys }).sorted() }

    /// A row's axis cells ("–" where the axis does not change its task).
    static func axisCells(_ names: [String], _ axes: [String: AxisValue]?) -> [String] { names.map { axes?[$0]?.description ?? "–" } }

    /// Mean ± 95% half-width; a figure the seeds agree on at the printed precision (a preset
    /// density) gets no "± 0.0000".
    static func spread(_ statistics: SeedStatistics, _ format: (Double) -> String) -> String {
        guard let halfWidth = statistics.ci95.map(format), halfWidth != format(0) else { return format(statistics.mean) }
        return format(statistics.mean) + " ± " + halfWidth
    }

    static func drop(_ row: AggregateRow, _ dense: DenseReference?) -> String {
        guard let dense, row.method != "dense" else { return "–" }
        return String(format: "%.2f", dense.drop(of: row))
    }

    /// Rows by method, then options with their numbers as numbers (T=20 before T=100), then
    /// round, then falling density.
    static func ordered(_ rows: [AggregateRow]) -> [AggregateRow] {
        rows.sorted { a, b in
            if (a.method == "dense") != (b.method == "dense") { return a.method == "dense" }
            if a.method != b.method { return a.method < b.method }
            if a.options != b.options { return ReportFigure.numericOrder(a.options, b.options) }
            if a.round != b.round { return a.round < b.round }
            if a.density.mean != b.density.mean { return a.density.mean > b.density.mean }
            return (a.axes ?? [:]).sorted { $0.key < $1.key }.map(\.value).lexicographicallyPrecedes((b.axes ?? [:]).sorted { $0.key < $1.key }.map(\.value))
        }
    }

    /// One row per task across seeds.
    static func aggregate(_ rows: [AggregateRow], dense: DenseReference?) -> (header: [String], rows: [[String]]) {
        let axes = axisNames(rows.map(\.axes))
        return (["method", "options"] + axes + ["round", "sparsity", "accuracy (%)", "drop vs dense (pp)", "n", "missing seeds", "remaining weights", "size MB (dense / sparse)"],
         ordered(rows).map { row in
             [row.method, row.options.isEmpty ? "–" : row.options] + axisCells(axes, row.axes) + ["\(row.round)", spread(row.sparsity) { String(format: "%.4f", $0) },
              spread(row.accuracy, percent), drop(row, dense), "\(row.accuracy.n)",
              row.missingSeeds.isEmpty ? "–" : row.missingSeeds.map(String.init).joined(separator: ", "),
              spread(row.remainingWeights) { String(Int($0.rounded())) },
              String(format: "%.2f / %.2f", row.sizeMBDense, row.sizeMBSparse)]
         })
    }

    /// The study's Table 1: dense, then each Lottery Ticket round, then each Han iteration;
    /// nil when neither ran.
    static func table1(_ rows: [AggregateRow], dense: DenseReference?) -> (header: [String], rows: [[String]])? {
        let order = ["dense", "lottery-ticket", "han"]
        let study = rows.filter { order.contains($0.method) }.sorted {
            ($0.method == $1.method) ? $0.round < $1.round : (order.firstIndex(of: $0.method) ?? 0) < (order.firstIndex(of: $1.method) ?? 0)
        }
        guard study.contains(where: { $0.method != "dense" }) else { return nil }
        // With sweep axes the rows also name their options and axis values, and sort by them before the round.
        let axes = axisNames(study.map(\.axes))
        func axisKey(_ row: AggregateRow) -> [AxisValue] { axes.map { row.axes?[$0] ?? .text("") } }
        let rows = axes.isEmpty ? study : study.sorted { a, b in
            if a.method != b.method { return (order.firstIndex(of: a.method) ?? 0) < (order.firstIndex(of: b.method) ?? 0) }
            if a.options != b.options { return ReportFigure.numericOrder(a.options, b.options) }
            if axisKey(a) != axisKey(b) { return axisKey(a).lexicographicallyPrecedes(axisKey(b)) }
            return a.round < b.round
        }
        let extra = axes.isEmpty ? [] : ["options"] + axes
        return (["method"] + extra + ["round / iteration", "sparsity (%)", "accuracy (%) mean ± 95% CI", "drop vs dense (pp)", "n", "remaining parameters", "size MB (sparse)"],
                rows.map { row in
                    [row.method] + (axes.isEmpty ? [] : [row.options.isEmpty ? "–" : row.options] + axisCells(axes, row.axes))
                        + [row.method == "dense" ? "–" : "\(row.round)", spread(row.sparsity, percent), spread(row.accuracy, percent),
                     drop(row, dense), "\(row.accuracy.n)", String(Int((Double(row.parameters) - (1 - row.density.mean) * row.remainingWeights.mean / Swift.max(row.density.mean, 1e-12)).rounded())),
                     String(format: "%.2f", row.sizeMBSparse)]
                })
    }

    /// Every result on its own, so the spread behind each mean shows; the drop is against the
    /// same seed's dense run.
    static func perSeed(_ records: [ResultRecord]) -> (header: [String], rows: [[String]]) {
        let denseRuns = records.filter { $0.method == "dense" }
        // The same seed's dense run of the same recipe: its axes, the record has with equal values.
        func dense(_ record: ResultRecord) -> Double? {
            denseRuns.first { $0.seed == record.seed && ($0.axes ?? [:]).allSatisfy { record.axes?[$0.key] == $0.value } }?.finalTestAccuracy
        }
        let axes = axisNames(records.map(\.axes))
        let sorted = records.sorted { a, b in
            if (a.method == "dense") != (b.method == "dense") { return a.method == "dense" }
            if a.method != b.method { return a.method < b.method }
            if a.options != b.options { return ReportFigure.numericOrder(a.options, b.options) }
            if a.round != b.round { return a.round < b.round }
            if a.density != b.density { return a.density > b.density }
            if a.seed != b.seed { return a.seed < b.seed }
            return (a.axes ?? [:]).sorted { $0.key < $1.key }.map(\.value).lexicographicallyPrecedes((b.axes ?? [:]).sorted { $0.key < $1.key }.map(\.value))
        }
        return (["method", "options"] + axes + ["round", "seed", "density", "accuracy (%)", "drop vs dense (pp)", "epochs", "seconds", "worker", "device"],
                sorted.map { record in
                    let drop = record.method == "dense" ? nil : dense(record).map { String(format: "%.2f", 100 * ($0 - record.finalTestAccuracy)) }
                    return [record.method, record.options.isEmpty ? "–" : record.options] + axisCells(axes, record.axes) + ["\(record.round)", "\(record.seed)",
                            String(format: "%.4f", record.density), percent(record.finalTestAccuracy), drop ?? "–", "\(record.epochs)",
                            String(format: "%.0f", record.wallSeconds), record.worker, record.device ?? "cpu"]
                })
    }
}
