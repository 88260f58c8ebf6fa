/// `aggregate.json`: results grouped by method, options and round/density, with statistics
/// across seeds and the seeds still missing.
public struct AggregateRow: Codable, Equatable, Sendable {
    /// The group: method, options, round, and the mean realised density and sparsity.
    public var method: String, options: String, round: Int
    /// Mean density and sparsity over the group's runs.
    public var density: Double, sparsity: Double
    /// Final test accuracy across seeds.
    public var accuracy: SeedStatistics
    /// Mean remaining weights, parameters and sizes.
    public var remainingWeights: Double, parameters: Int, sizeMBDense: Double, sizeMBSparse: Double
    /// Seeds of the sweep with no result in this group yet.
    public var missingSeeds: [UInt64]

    /// Groups `records`; a group is one (method, options, round, target density) cell of the
    /// sweep, identified here by method, options, round and density rounded to 4 decimals.
    public static func aggregate(_ records: [ResultRecord], seeds: [UInt64]) -> [AggregateRow] {
        struct Key: Hashable { var method: String, options: String, round: Int, density: Int }
        var groups: [Key: [ResultRecord]] = [:]
        var order: [Key] = []
        for record in records {
            let key = Key(method: record.method, options: record.options, round: record.round, density: Int((record.density * 1e4).rounded()))
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(record)
        }
        return order.map { key in
            let rows = groups[key]!
            let n = Double(rows.count)
            let present = Set(rows.map(\.seed))
            return AggregateRow(
                method: key.method, options: key.options, round: key.round,
                density: rows.reduce(0) { $0 + $1.density } / n, sparsity: rows.reduce(0) { $0 + $1.sparsity } / n,
                accuracy: SeedStatistics(rows.map(\.finalTestAccuracy)),
                remainingWeights: Double(rows.reduce(0) { $0 + $1.remainingWeights }) / n, parameters: rows[0].parameters,
                sizeMBDense: rows[0].sizeMBDense, sizeMBSparse: rows.reduce(0) { $0 + $1.sizeMBSparse } / n,
                missingSeeds: seeds.filter { !present.contains($0) })
        }
    }
}
