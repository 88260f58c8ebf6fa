import TaskRuntime

/// `aggregate.json`: results grouped by the task they come from (method, options, round and,
/// where density is a parameter, target density), with statistics across seeds and the seeds
/// still missing.
public struct AggregateRow: Codable, Equatable, Sendable {
    /// The group: method, options and round (LTH round / Han iteration).
    public var method: String, options: String, round: Int
    /// The density the group's tasks aim at; nil for Han, whose density is realised.
    public var targetDensity: Double?
    /// The group's sweep axis values (nil without axes): every option and preset field that varies in the sweep and changes the task.
    public var axes: [String: AxisValue]? = nil
    /// Realised density and sparsity across seeds (they differ by seed for Han).
    public var density: SeedStatistics, sparsity: SeedStatistics
    /// Final test accuracy across seeds.
    public var accuracy: SeedStatistics
    /// Prunable weights kept, across seeds.
    public var remainingWeights: SeedStatistics
    /// Parameters, and mean sizes in MB (dense / sparse).
    public var parameters: Int, sizeMBDense: Double, sizeMBSparse: Double
    /// Seeds of the sweep with no result in this group yet.
    public var missingSeeds: [UInt64]

    /// Groups `records` by what defines their task, never by realised density: Han lands a few
    /// weights apart per seed, so keying on it would split every Han round into one group per seed.
    public static func aggregate(_ records: [ResultRecord], seeds: [UInt64]) -> [AggregateRow] {
        struct Key: Hashable { var method: String, options: String, round: Int, targetDensity: Double?, axes: [String: AxisValue]? }
        var position: [Key: Int] = [:]
        var groups: [[ResultRecord]] = []
        for record in records {
            let key = Key(method: record.method, options: record.options, round: record.round, targetDensity: record.targetDensity, axes: record.axes)
            if let index = position[key] {
                groups[index].append(record)
            } else {
                position[key] = groups.count
                groups.append([record])
            }
        }
        // Every group starts with the record that opened it, so rows[0] exists.
        return groups.map { rows in
            let present = Set(rows.map(\.seed))
            return AggregateRow(
                method: rows[0].method, options: rows[0].options, round: rows[0].round, targetDensity: rows[0].targetDensity, axes: rows[0].axes,
                density: SeedStatistics(rows.map(\.density)), sparsity: SeedStatistics(rows.map(\.sparsity)),
                accuracy: SeedStatistics(rows.map(\.finalTestAccuracy)),
                remainingWeights: SeedStatistics(rows.map { Double($0.remainingWeights) }),
                parameters: rows[0].parameters, sizeMBDense: rows[0].sizeMBDense,
                sizeMBSparse: rows.reduce(0) { $0 + $1.sizeMBSparse } / Double(rows.count),
                missingSeeds: seeds.filter { !present.contains($0) })
        }
    }
}
