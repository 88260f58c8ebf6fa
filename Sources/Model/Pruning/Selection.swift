/// Order statistics for pruning thresholds.
public enum Selection {
    /// The k-th smallest value (1-based, like `torch.kthvalue`), in expected linear time.
    public static func kthSmallest(_ values: [Double], _ k: Int) -> Double {
        precondition(k >= 1 && k <= values.count, "kthSmallest: k = \(k) outside 1...\(values.count)")
        var a = values
        var low = 0, high = a.count - 1
        let target = k - 1
        while low < high {
            // Median of three keeps sorted and constant runs (common: pruned scores are all 0) fast.
            let mid = low + (high - low) / 2
            let pivot = Swift.max(Swift.min(a[low], a[mid]), Swift.min(Swift.max(a[low], a[mid]), a[high]))
            // Three-way partition: < pivot | == pivot | > pivot.
            var lt = low, i = low, gt = high
            while i <= gt {
                if a[i] < pivot { a.swapAt(lt, i); lt += 1; i += 1 }
                else if a[i] > pivot { a.swapAt(i, gt); gt -= 1 }
                else { i += 1 }
            }
            if target < lt { high = lt - 1 } else if target > gt { low = gt + 1 } else { return pivot }
        }
        return a[target]
    }

    /// Masks that keep the scores above the k-th smallest, k = ⌊(1 − density)·N⌋, ties at the
    /// threshold pruned (the official SynFlow rule). Global scope ranks all tensors together;
    /// local scope ranks each tensor alone. When k < 1 the previous masks stay.
    public static func masks(scores: [String: [Double]], names: [String], density: Double, global: Bool,
                             previous: [String: [Float]]) -> [String: [Float]] {
        var result = previous
        func mask(_ score: [Double], threshold: Double) -> [Float] { score.map { $0 <= threshold ? 0 : 1 } }
        if global {
            let all = names.flatMap { scores[$0] ?? [] }
            let k = Int((1 - density) * Double(all.count))
            guard k >= 1 else { return result }
            let threshold = kthSmallest(all, k)
            for name in names { if let score = scores[name] { result[name] = mask(score, threshold: threshold) } }
        } else {
            for name in names {
                guard let score = scores[name] else { continue }
                let k = Int((1 - density) * Double(score.count))
                if k >= 1 { result[name] = mask(score, threshold: kthSmallest(score, k)) }
            }
        }
        return result
    }
}
