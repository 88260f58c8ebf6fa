import Foundation
import Model
import TaskRuntime

/// The files a sweep leaves in its run directory: `results.json` (one record per reported
/// task), `aggregate.json` (statistics across seeds), `sweep.json` (the sweep as run), one SVG
/// per figure (`ReportFigure`), and `report.md` and `report.html`.
public enum SweepOutputs {
    /// Writes them all from the journal's accepted results and returns the report's path. The
    /// coordinators call it whenever a result arrives and once at the end, with the sweep's
    /// `plan` when they hold it (planning a fleet's sweep again takes seconds of a core).
    @discardableResult
    public static func write(journal: Journal, sweep: SweepSpec, runDirectory: URL, plan planned: SweepPlan? = nil) throws -> URL {
        let plan = try planned ?? SweepPlan(sweep)
        let records = try journal.results().compactMap { try? JSONDecoder().decode(ResultRecord.self, from: Data($0.utf8)) }
            .map { withTargetDensity($0, from: plan) }
        let rows = AggregateRow.aggregate(records, seeds: sweep.seeds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        func save(_ data: Data, _ name: String) throws {
            try data.write(to: runDirectory.appendingPathComponent(name), options: .atomic)
        }
        try save(encoder.encode(records), "results.json")
        try save(encoder.encode(rows), "aggregate.json")
        try save(encoder.encode(sweep), "sweep.json")
        let document = try document(journal: journal, sweep: sweep, plan: plan, records: records, rows: rows, runDirectory: runDirectory)
        for figure in document.figures { try save(Data(figure.plot.svg().utf8), figure.fileName) }
        try save(Data(HTMLReport.render(document).utf8), "report.html")
        let report = runDirectory.appendingPathComponent("report.md")
        try save(Data(MarkdownReport.render(document).utf8), "report.md")
        return report
    }

    /// The report of the journal's accepted results as it stands (the dashboard shows it live).
    public static func document(journal: Journal, sweep: SweepSpec, runDirectory: URL) throws -> ReportDocument {
        let plan = try SweepPlan(sweep)
        let records = try journal.results().compactMap { try? JSONDecoder().decode(ResultRecord.self, from: Data($0.utf8)) }
            .map { withTargetDensity($0, from: plan) }
        return try document(journal: journal, sweep: sweep, plan: plan, records: records,
                            rows: AggregateRow.aggregate(records, seeds: sweep.seeds), runDirectory: runDirectory)
    }

    private static func document(journal: Journal, sweep: SweepSpec, plan: SweepPlan, records: [ResultRecord], rows: [AggregateRow],
                                 runDirectory: URL) throws -> ReportDocument {
        let provenance = Provenance(sweep: sweep, preset: try sweep.resolvedPreset(), records: records,
                                    planned: plan.tasks.map(\.labels).filter(\.reported), attempts: try journal.attempts(),
                                    runDirectory: runDirectory)
        return SweepReport.document(provenance: provenance, rows: rows, records: records)
    }

    /// `record` with its target density, taken from `plan` when the record predates the field:
    /// among the plan's reported tasks with the record's method, options, seed and round, the one
    /// whose target is nearest the realised density (SynFlow's targets lie far apart, a few
    /// weights is all a realised density misses by). Han's tasks have no target, so it stays nil.
    static func withTargetDensity(_ record: ResultRecord, from plan: SweepPlan) -> ResultRecord {
        guard record.targetDensity == nil else { return record }
        let targets = plan.tasks.map(\.labels).filter {
            $0.reported && $0.method == record.method && $0.options == record.options && $0.seed == record.seed && $0.round == record.round
        }.compactMap(\.targetDensity)
        var filled = record
        filled.targetDensity = targets.min { abs($0 - record.density) < abs($1 - record.density) }
        return filled
    }

    /// The results record of a finished training task.
    public static func record(for task: TaskSpec, summary: RunSummary, wallSeconds: Double, worker: String, host: String,
                              codeVersion: String) -> ResultRecord {
        let density = Double(summary.remaining) / Double(Swift.max(summary.prunable, 1))
        let sizes = ResultRecord.sizes(parameters: summary.parameters, prunable: summary.prunable, remaining: summary.remaining)
        var record = ResultRecord(
            method: task.labels.method, options: task.labels.options, seed: task.labels.seed, round: task.labels.round,
            targetDensity: task.labels.targetDensity, axes: task.labels.axes.isEmpty ? nil : task.labels.axes,
            density: density, sparsity: 1 - density, remainingWeights: summary.remaining, prunableWeights: summary.prunable,
            parameters: summary.parameters, sizeMBDense: sizes.dense, sizeMBSparse: sizes.sparse,
            bestValidationAccuracy: summary.bestValidationAccuracy, finalTestAccuracy: summary.finalTestAccuracy,
            bestValidationTestAccuracy: summary.bestValidationTestAccuracy, epochs: summary.history.count,
            wallSeconds: wallSeconds, worker: worker, host: host, blasCore: summary.blasCore,
            configHash: summary.identity, codeVersion: codeVersion)
        record.device = summary.device
        record.precision = summary.precision
        record.cudaGraphs = summary.cudaGraphs
        record.secondsPerEpoch = summary.history.isEmpty ? nil : summary.history.map(\.seconds).reduce(0, +) / Double(summary.history.count)
        record.sparseLayers = summary.sparse?.sparseLayers
        record.columnChunks = summary.columnChunks
        record.evaluationDirectLayers = summary.evaluationDirectLayers
        return record
    }
}
