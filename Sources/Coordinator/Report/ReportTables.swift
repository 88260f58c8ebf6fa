import Foundation

/// The report's tables, as header and rows of text: the aggregate across seeds, the study's
/// Table 1 for Lottery Ticket and Han, and every seed's own result.
enum ReportTables {
    static func percent(_ value: Double) -> String { String(format: "%.2f", 100 * value) }

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
            return a.density.mean > b.density.mean
        }
    }

    /// One row per task across seeds.
    static func aggregate(_ rows: [AggregateRow], dense: DenseReference?) -> (header: [String], rows: [[String]]) {
        (["method", "options", "round", "sparsity", "accuracy (%)", "drop vs dense (pp)", "n", "missing seeds", "remaining weights", "size MB (dense / sparse)"],
         ordered(rows).map { row in
             [row.method, row.options.isEmpty ? "–" : row.options, "\(row.round)", spread(row.sparsity) { String(format: "%.4f", $0) },
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
        return (["method", "round / iteration", "sparsity (%)", "accuracy (%) mean ± 95% CI", "drop vs dense (pp)", "n", "remaining parameters", "size MB (sparse)"],
                study.map { row in
                    [row.method, row.method == "dense" ? "–" : "\(row.round)", spread(row.sparsity, percent), spread(row.accuracy, percent),
                     drop(row, dense), "\(row.accuracy.n)", String(Int((Double(row.parameters) - (1 - row.density.mean) * row.remainingWeights.mean / Swift.max(row.density.mean, 1e-12)).rounded())),
                     String(format: "%.2f", row.sizeMBSparse)]
                })
    }

    /// Every result on its own, so the spread behind each mean shows; the drop is against the
    /// same seed's dense run.
    static func perSeed(_ records: [ResultRecord]) -> (header: [String], rows: [[String]]) {
        let dense = Dictionary(records.filter { $0.method == "dense" }.map { ($0.seed, $0.finalTestAccuracy) }) { a, _ in a }
        let sorted = records.sorted { a, b in
            if (a.method == "dense") != (b.method == "dense") { return a.method == "dense" }
            if a.method != b.method { return a.method < b.method }
            if a.options != b.options { return ReportFigure.numericOrder(a.options, b.options) }
            if a.round != b.round { return a.round < b.round }
            if a.density != b.density { return a.density > b.density }
            return a.seed < b.seed
        }
        return (["method", "options", "round", "seed", "density", "accuracy (%)", "drop vs dense (pp)", "epochs", "seconds", "worker", "device"],
                sorted.map { record in
                    let drop = record.method == "dense" ? nil : dense[record.seed].map { String(format: "%.2f", 100 * ($0 - record.finalTestAccuracy)) }
                    return [record.method, record.options.isEmpty ? "–" : record.options, "\(record.round)", "\(record.seed)",
                            String(format: "%.4f", record.density), percent(record.finalTestAccuracy), drop ?? "–", "\(record.epochs)",
                            String(format: "%.0f", record.wallSeconds), record.worker, record.device ?? "cpu"]
                })
    }
}
