import Foundation

/// Iterative SynFlow (the official algorithm): T rounds of scoring and global masking along
/// the exponential schedule d_k = D^(k/T), k = 1…T, so the last round lands on density D for
/// any T. (The study removed a fixed 20% per round instead: 0.8^k, 4 weights after 100.)
public enum SynFlow {
    /// How the per-round density moves from 1 to D.
    public enum Schedule: String, Codable, Hashable, Sendable {
        /// d_k = D^(k/T): a constant fraction 1 − D^(1/T) of the survivors per round (the default).
        case exponential
        /// d_k = 1 − (1 − D)·k/T.
        case linear
    }

    /// The target density of round k of T.
    public static func density(round k: Int, of rounds: Int, final: Double, schedule: Schedule) -> Double {
        switch schedule {
        case .exponential: pow(final, Double(k) / Double(rounds))
        case .linear: 1 - (1 - final) * Double(k) / Double(rounds)
        }
    }

    /// The masks after `iterations` rounds to `density`, starting from `network`'s current
    /// masks; `progress` hears (round, kept) after each.
    public static func prune(_ network: ResNet18, inputSide: Int, density: Double, iterations: Int,
                             schedule: Schedule = .exponential, global: Bool = true,
                             progress: (Int, Int) -> Void = { _, _ in }) -> MaskSet {
        var masks = MaskSet(of: network)
        let scorer = SynFlowScorer(network: network, inputSide: inputSide)
        for round in 1...iterations {
            let current = masks.values.mapValues { $0.map(Double.init) }
            let scores = scorer.scores(masks: current).scores
            let target = SynFlow.density(round: round, of: iterations, final: density, schedule: schedule)
            masks.values = Selection.masks(scores: scores, names: masks.names, density: target, global: global, previous: masks.values)
            progress(round, masks.kept)
        }
        return masks
    }
}

