import Foundation

/// A pruning method with its options, as a typed record (its JSON is part of a step's identity).
public enum PruningMethod: Codable, Hashable, Sendable {
    /// One Lottery Ticket round: remove `rate` of the survivors by magnitude from the
    /// end-of-round weights. `pruneClassifier` false leaves `linear.weight` dense.
    case lotteryTicket(rate: Double = 0.2, scope: MagnitudePruning.Scope = .layerwise, pruneClassifier: Bool = true)
    /// One Han et al. prune: threshold q · unbiased std of W ⊙ m per tensor, keep |w| ≥ it.
    case han(quality: Double = 1)
    /// SynFlow at initialisation: `iterations` rounds to `density`.
    case synflow(density: Double, iterations: Int = 100, schedule: SynFlow.Schedule = .exponential, global: Bool = true)
    /// Random scores, one shot.
    case random(density: Double, global: Bool = true)
    /// |w| at initialisation, one shot.
    case magnitudeAtInit(density: Double, global: Bool = true)
    /// SNIP, one shot on one batch of `examplesPerClass` images per class.
    case snip(density: Double, examplesPerClass: Int = 10, global: Bool = true)

    /// A short name for logs and results.
    public var name: String {
        switch self {
        case .lotteryTicket: "lottery-ticket"
        case .han: "han"
        case .synflow: "synflow"
        case .random: "random"
        case .magnitudeAtInit: "magnitude-at-init"
        case .snip: "snip"
        }
    }

    /// Whether the method needs training images (SNIP).
    public var needsData: Bool { if case .snip = self { true } else { false } }

    /// Checks the options, naming the first that cannot work.
    public func validate() throws(ModelError) {
        func checkDensity(_ d: Double) throws(ModelError) {
            guard d > 0, d <= 1 else { throw .invalidConfiguration("density must be in (0, 1] (a fraction kept, not a percentage), got \(d)") }
        }
        switch self {
        case .lotteryTicket(let rate, _, _):
            guard rate > 0, rate < 1 else { throw .invalidConfiguration("rate must be in (0, 1), got \(rate)") }
        case .han(let quality):
            guard quality > 0 else { throw .invalidConfiguration("quality must be > 0, got \(quality)") }
        case .synflow(let density, let iterations, _, _):
            try checkDensity(density)
            guard (1...1000).contains(iterations) else { throw .invalidConfiguration("iterations must be in 1...1000, got \(iterations)") }
        case .random(let density, _), .magnitudeAtInit(let density, _):
            try checkDensity(density)
        case .snip(let density, let perClass, _):
            try checkDensity(density)
            guard perClass >= 1 else { throw .invalidConfiguration("examplesPerClass must be ≥ 1, got \(perClass)") }
        }
    }

    /// The prune step: new masks for `network` (its weights and current masks as loaded).
    /// `data` is the training set (SNIP only); `seed` drives random choices; `log` hears progress.
    public func prune(_ network: ResNet18, inputSide: Int, data: ImageDataset? = nil, seed: UInt64 = 0,
                      log: (String) -> Void = { _ in }) throws(ModelError) -> MaskSet {
        try validate()
        var masks = MaskSet(of: network)
        // Copied only for the magnitude rules that read them; SynFlow and the baselines score the network itself.
        func weights() -> [String: [Float]] { Dictionary(uniqueKeysWithValues: network.prunableParameters.map { ($0.name, $0.value.array) }) }
        let names = masks.names
        func oneShot(_ scores: [String: [Double]], _ density: Double, _ global: Bool) {
            masks.values = Selection.masks(scores: scores, names: names, density: density, global: global, previous: masks.values)
        }
        switch self {
        case .lotteryTicket(let rate, let scope, let pruneClassifier):
            let pruned = pruneClassifier ? names : names.filter { $0 != network.linear.weight.name }
            masks.values = MagnitudePruning.prune(weights: weights(), masks: masks.values, names: pruned, rate: rate, scope: scope)
        case .han(let quality):
            masks.values = HanPruning.prune(weights: weights(), masks: masks.values, names: names, quality: quality)
        case .synflow(let density, let iterations, let schedule, let global):
            let every = Swift.max(1, iterations / 10)
            masks = SynFlow.prune(network, inputSide: inputSide, density: density, iterations: iterations,
                                  schedule: schedule, global: global) { round, kept in
                if round % every == 0 || round == iterations { log("synflow round \(round)/\(iterations): \(kept) kept") }
            }
            let expected = Double(masks.total) * density
            guard abs(Double(masks.kept) - expected) < 5 || !global else {
                throw .invalidConfiguration("SynFlow kept \(masks.kept) weights, expected \(Int(expected)) ± 5 for density \(density); scores collapsed (ties?)")
            }
        case .random(let density, let global):
            oneShot(InitBaselines.randomScores(network, seed: seed), density, global)
        case .magnitudeAtInit(let density, let global):
            oneShot(InitBaselines.magnitudeScores(network), density, global)
        case .snip(let density, let perClass, let global):
            guard let data else { throw .invalidConfiguration("snip needs training images (--dataset)") }
            oneShot(InitBaselines.snipScores(network, data: data, perClass: perClass, seed: seed), density, global)
        }
        return masks
    }
}
