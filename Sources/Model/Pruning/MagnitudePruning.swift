/// Lottery Ticket rounds: prune a fraction of the surviving weights by magnitude.
public enum MagnitudePruning {
    /// How the threshold is chosen.
    public enum Scope: String, Codable, Hashable, Sendable {
        /// The original study's default: each tensor loses ⌊rate·n⌋ of its n survivors; the
        /// threshold is the ⌊rate·n⌋-th smallest surviving magnitude, and ties at it are pruned.
        case layerwise
        /// open_lth's `sparse_global`: n = ⌈rate·N⌉ over all survivors, threshold the value at
        /// 0-based index n of the sorted magnitudes, keep `> threshold` (prunes n + 1 without ties).
        case global
    }

    /// New masks after one round. `weights` and `masks` are by name; tensors outside `names`
    /// (e.g. the classifier when it is not pruned) keep their masks.
    public static func prune(weights: [String: [Float]], masks: [String: [Float]], names: [String],
                             rate: Double, scope: Scope) -> [String: [Float]] {
        var result = masks
        // Tensors without both weights and a mask are left as they are.
        let names = names.filter { weights[$0] != nil && masks[$0] != nil }
        func pairs(_ name: String) -> Zip2Sequence<[Float], [Float]> { zip(weights[name] ?? [], masks[name] ?? []) }
        func survivors(_ name: String) -> [Double] { pairs(name).filter { $1 != 0 }.map { abs(Double($0.0)) } }
        func keep(_ name: String, above threshold: Double) {
            result[name] = pairs(name).map { abs(Double($0 * $1)) > threshold && $1 != 0 ? 1 : 0 }
        }
        switch scope {
        case .layerwise:
            for name in names {
                let alive = survivors(name)
                let k = Int(Double(alive.count) * rate)
                if k >= 1 { keep(name, above: Selection.kthSmallest(alive, k)) }
            }
        case .global:
            let alive = names.flatMap(survivors)
            let n = Int((rate * Double(alive.count)).rounded(.up))
            guard n >= 1, n < alive.count else { return result }
            let threshold = Selection.kthSmallest(alive, n + 1)
            for name in names { keep(name, above: threshold) }
        }
        return result
    }
}

/// Han et al. (2015) magnitude pruning as the study ran it: per tensor, threshold =
/// q · std(W ⊙ m) with the unbiased (N − 1) standard deviation over *all* entries (pruned
/// zeros included), keep |w| ≥ threshold.
public enum HanPruning {
    /// New masks after one prune.
    public static func prune(weights: [String: [Float]], masks: [String: [Float]], names: [String], quality: Double) -> [String: [Float]] {
        var result = masks
        for name in names {
            guard let w = weights[name], let m = masks[name], w.count > 1 else { continue }
            let x = zip(w, m).map { Double($0 * $1) }
            let mean = x.reduce(0, +) / Double(x.count)
            let std = (x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count - 1)).squareRoot()
            let threshold = quality * std
            result[name] = zip(x, m).map { abs($0) >= threshold && $1 != 0 ? 1 : 0 }
        }
        return result
    }
}
