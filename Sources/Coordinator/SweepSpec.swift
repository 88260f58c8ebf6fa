import Foundation
import Model

/// A sweep: which methods, with which hyper-parameter grids, for which seeds, on which preset.
/// Stored as JSON under `sweeps/` or built in by name.
public struct SweepSpec: Codable, Hashable, Sendable {
    /// The sweep's name.
    public var name: String
    /// The preset's name (`paper`, `quick`, `smoke`).
    public var preset: String
    /// Run seeds.
    public var seeds: [UInt64]
    /// Train the dense baseline (round 0 of the Lottery Ticket, start of Han).
    public var dense: Bool
    /// Lottery Ticket prune-and-retrain rounds after the dense round (0 for none).
    public var lotteryRounds: Int
    /// Han fine-tunes (the first one unpruned; iterations − 1 prunes; 0 for none).
    public var hanIterations: Int
    /// SynFlow iteration counts and densities (the grid is their product).
    public var synflowIterations: [Int]
    /// SynFlow densities.
    public var synflowDensities: [Double]
    /// At-initialisation baselines ("random", "magnitude-at-init", "snip", "synflow").
    public var baselines: [String]
    /// Densities of the baselines.
    public var baselineDensities: [Double]
    /// Overrides of the preset's dense recipe, field by field.
    public var overrides: Overrides

    /// Overridable fields of the training recipe (nil keeps the preset's value).
    public struct Overrides: Codable, Hashable, Sendable {
        /// Network width, epochs, batch size, images used.
        public var width: Int?, epochs: Int?, batchSize: Int?, trainLimit: Int?, testLimit: Int?, validationSize: Int?
        /// Base learning rate.
        public var learningRate: Double?
        /// An overrides record (all nil).
        public init() {}
    }

    /// A sweep; only the name, preset and seeds are required.
    public init(name: String, preset: String, seeds: [UInt64], dense: Bool = false, lotteryRounds: Int = 0, hanIterations: Int = 0,
                synflowIterations: [Int] = [], synflowDensities: [Double] = [], baselines: [String] = [],
                baselineDensities: [Double] = [], overrides: Overrides = Overrides()) {
        self.name = name
        self.preset = preset
        self.seeds = seeds
        self.dense = dense
        self.lotteryRounds = lotteryRounds
        self.hanIterations = hanIterations
        self.synflowIterations = synflowIterations
        self.synflowDensities = synflowDensities
        self.baselines = baselines
        self.baselineDensities = baselineDensities
        self.overrides = overrides
    }

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case name, preset, seeds, dense, lotteryRounds, hanIterations, synflowIterations, synflowDensities, baselines, baselineDensities, overrides
    }

    /// Decodes a sweep file: missing optional fields take their defaults, unknown fields are
    /// an error (a typo must not silently change the sweep).
    public init(from decoder: any Decoder) throws {
        try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), preset: try c.decode(String.self, forKey: .preset),
                  seeds: try c.decode([UInt64].self, forKey: .seeds),
                  dense: try c.decodeIfPresent(Bool.self, forKey: .dense) ?? false,
                  lotteryRounds: try c.decodeIfPresent(Int.self, forKey: .lotteryRounds) ?? 0,
                  hanIterations: try c.decodeIfPresent(Int.self, forKey: .hanIterations) ?? 0,
                  synflowIterations: try c.decodeIfPresent([Int].self, forKey: .synflowIterations) ?? [],
                  synflowDensities: try c.decodeIfPresent([Double].self, forKey: .synflowDensities) ?? [],
                  baselines: try c.decodeIfPresent([String].self, forKey: .baselines) ?? [],
                  baselineDensities: try c.decodeIfPresent([Double].self, forKey: .baselineDensities) ?? [],
                  overrides: try c.decodeIfPresent(Overrides.self, forKey: .overrides) ?? Overrides())
    }

    /// The built-in sweeps by name.
    public static let builtIn: [String: SweepSpec] = [
        "synflow-iters": SweepSpec(name: "synflow-iters", preset: "quick", seeds: [42, 43, 44],
                                   synflowIterations: [1, 10, 20, 100], synflowDensities: [0.1, 0.05, 0.01]),
        "seeds": SweepSpec(name: "seeds", preset: "paper", seeds: [42, 43, 44], dense: true, lotteryRounds: 9, hanIterations: 7),
        "baselines": SweepSpec(name: "baselines", preset: "quick", seeds: [42, 43, 44],
                               baselines: ["random", "magnitude-at-init", "snip", "synflow"], baselineDensities: [0.1, 0.05, 0.01]),
    ]

    /// Reads a sweep file; every problem names the file and the field.
    public static func load(_ url: URL) throws(SweepError) -> SweepSpec {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw .invalid("cannot read sweep file \(url.path): \(error.localizedDescription)") }
        do { return try JSONDecoder().decode(SweepSpec.self, from: data) } catch {
            throw .invalid(StrictKeys.explain(error, file: url, kind: "sweep file"))
        }
    }

    /// The preset with the overrides applied, after checking every field.
    public func resolvedPreset() throws(SweepError) -> Preset {
        guard var preset = Preset.builtIn[preset] else {
            throw .invalid("preset \(self.preset.debugDescription) is unknown; use one of \(Preset.builtIn.keys.sorted().joined(separator: ", "))")
        }
        let o = overrides
        if let v = o.width { preset.training.width = v }
        if let v = o.epochs { preset.training.epochs = v }
        if let v = o.batchSize { preset.training.batchSize = v }
        if let v = o.trainLimit { preset.training.trainLimit = v }
        if let v = o.testLimit { preset.training.testLimit = v }
        if let v = o.validationSize { preset.training.validationSize = v }
        if let v = o.learningRate { preset.training.learningRate = v }
        do { try preset.training.validate() } catch { throw .invalid("overrides: \(error)") }
        guard !seeds.isEmpty else { throw .invalid("seeds is empty: a sweep needs at least one seed") }
        guard lotteryRounds >= 0, hanIterations >= 0 else { throw .invalid("lotteryRounds and hanIterations must be ≥ 0") }
        for density in synflowDensities + baselineDensities where !(density > 0 && density <= 1) {
            throw .invalid("density \(density) must be a fraction kept in (0, 1], not a percentage")
        }
        for iterations in synflowIterations where !(1...1000).contains(iterations) {
            throw .invalid("synflowIterations \(iterations) must be in 1...1000")
        }
        let known: Set = ["random", "magnitude-at-init", "snip", "synflow"]
        if let unknown = baselines.first(where: { !known.contains($0) }) {
            throw .invalid("baselines: \(unknown.debugDescription) is not one of \(known.sorted().joined(separator: ", "))")
        }
        return preset
    }
}

/// A sweep or preset that cannot run, with the field to fix.
public enum SweepError: Error, Equatable, CustomStringConvertible {
    /// The message names the file or field.
    case invalid(String)
    /// The coordinator cancelled the task with this id while it ran.
    case cancelled(String)

    public var description: String {
        switch self {
        case .invalid(let message): message
        case .cancelled(let task): "task \(task.prefix(12)) was cancelled by the coordinator"
        }
    }
}
