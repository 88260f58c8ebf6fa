/// The report of a sweep, from its provenance, aggregate rows and results: provenance first,
/// then the figures, the aggregate table (with the study's Table 1 for Lottery Ticket and Han)
/// and every seed's results. `report.md` and `report.html` both render it.
public enum SweepReport {
    /// The report's content.
    public static func document(provenance: Provenance, rows: [AggregateRow], records: [ResultRecord]) -> ReportDocument {
        let dense = DenseReference(rows: rows)
        var blocks: [ReportDocument.Block] = [
            .heading("Provenance"), .facts(provenance.facts),
            .paragraph("Reproduce (a rerun on this run directory resumes; on a fresh one it trains everything again):"),
            .command(provenance.command),
        ]
        let figures = ReportFigure.all(rows: rows)
        if !figures.isEmpty { blocks += [.heading("Figures")] + figures.map { .figure($0) } }
        blocks += [
            .heading("Results across seeds"),
            .paragraph("Accuracy is the final test accuracy. Sparsity, accuracy and remaining weights are means across seeds, ± the 95% confidence half-width (Student t) where the seeds differ at the printed precision. "
                + (dense.map { String(format: "The drop is in percentage points below the dense network's mean, %.2f%%.", 100 * $0.accuracy.mean) }
                    ?? "This sweep has no dense run, so there is no drop against dense.")),
        ]
        let aggregate = ReportTables.aggregate(rows, dense: dense)
        blocks.append(.table(header: aggregate.header, rows: aggregate.rows))
        if let table1 = ReportTables.table1(rows, dense: dense) {
            blocks += [.heading("Table 1: Lottery Ticket rounds and Han iterations"),
                       .paragraph("As in the study: sparsity and accuracy in percent, mean ± 95% interval across seeds; remaining parameters count every parameter left, prunable or not."),
                       .table(header: table1.header, rows: table1.rows)]
        }
        let perSeed = ReportTables.perSeed(records)
        blocks += [.heading("Every seed"), .paragraph("Each training's own result; the drop is against the dense run of the same seed."),
                   .table(header: perSeed.header, rows: perSeed.rows)]
        return ReportDocument(title: "Sweep \(provenance.sweep.name)", blocks: blocks,
                              incomplete: records.count < provenance.planned.count)
    }
}
