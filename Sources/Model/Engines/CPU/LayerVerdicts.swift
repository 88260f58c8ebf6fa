import Foundation

/// A start-up measurement's verdicts by layer shape, as its cache file keeps them
/// (`ColumnChunkSelection`, `EvaluationRouteSelection`).
struct LayerVerdicts<Verdict: Codable>: Codable {
    /// The verdicts by layer key (the shape and whatever else the verdict holds for).
    var layers: [String: Verdict] = [:]

    /// The verdicts of the layers keyed `keys`: read from `cache`, and those missing measured
    /// (`measure(i)` for the first layer `i` with each key) and added to it, under the cache's
    /// lock so that processes starting together measure once. Without a cache every key is
    /// measured here and nothing is kept. `origin` says for the log line where they came from:
    /// "N shape(s) timed now in S s, once per machine" or "kept in FILE".
    static func answer(keys: [String], cache: URL?, measure: (Int) -> Verdict) -> (verdicts: [String: Verdict], origin: String) {
        let start = Date()
        var measured = 0
        func measureMissing(_ known: LayerVerdicts?) -> LayerVerdicts {
            var result = known ?? LayerVerdicts()
            for (index, key) in keys.enumerated() where result.layers[key] == nil {
                result.layers[key] = measure(index)
                measured += 1
            }
            return result
        }
        let verdicts = cache.map { cache in
            MeasurementCache<LayerVerdicts>(url: cache, format: .readable).answer(
                usable: { file in keys.allSatisfy { file.layers[$0] != nil } }, measure: measureMissing).layers
        } ?? measureMissing(nil).layers
        let origin = measured > 0
            ? "\(measured) shape(s) timed now in \(Int(Date().timeIntervalSince(start).rounded())) s, once per machine"
            : "kept in \(cache?.lastPathComponent ?? "this process")"
        return (verdicts, origin)
    }
}
