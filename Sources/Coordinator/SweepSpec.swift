import Foundation
import Model
import TaskRuntime

/// A sweep: which methods, with which hyper-parameter grids, for which seeds, on which preset.
/// Stored as JSON under `sweeps/` or built in by name.
public struct SweepSpec: Codable, Hashable, Sendable {
    /// The sweep's name.
    public var name: String
    /// The preset's name (`paper`, `quick`, `smoke`).
    public var preset: String
    /// Run seeds.
    public var seeds: [UInt64]
    /// Train the dense network per seed: round 0 of the Lottery Ticket, the start of Han, and the
    /// reference every other method's accuracy drop is measured against. It is one task per
    /// preset and seed (content-addressed), so sweeps sharing a run directory share it.
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

    /// Overridable fields of the preset (nil keeps the preset's value). In a sweep file they
    /// are the `overrides` object; on the command line, `--set FIELD=VALUE`.
    public struct Overrides: Codable, Hashable, Sendable {
        /// The dataset (`cifar10`, `fashion-mnist`, `synthetic`).
        public var dataset: String?
        /// Network width, epochs, batch size, images used.
        public var width: Int?, epochs: Int?, batchSize: Int?, trainLimit: Int?, testLimit: Int?, validationSize: Int?
        /// Base learning rate, momentum and weight decay.
        public var learningRate: Double?, momentum: Double?, weightDecay: Double?
        /// The schedule (`cosine`, `constant`, `multistep`) and, for `multistep`, its milestones and factor.
        public var schedule: String?, milestones: [Int]?, gamma: Double?
        /// Random crop and flip.
        public var augment: Bool?
        /// GPU arithmetic (`fp32`, `tf32`); unset leaves it to the device (TF32 on GPUs).
        public var precision: String?
        /// Han et al.'s fine-tuning: epochs, base rate, milestones.
        public var hanEpochs: Int?, hanLearningRate: Double?, hanMilestones: [Int]?

        /// An overrides record (all nil).
        public init() {}

        private enum CodingKeys: String, CodingKey, CaseIterable {
            case dataset, width, epochs, batchSize, trainLimit, testLimit, validationSize, learningRate, momentum, weightDecay
            case schedule, milestones, gamma, augment, hanEpochs, hanLearningRate, hanMilestones, precision
        }

        /// Decodes overrides; an unknown field is an error.
        public init(from decoder: any Decoder) throws {
            try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            dataset = try c.decodeIfPresent(String.self, forKey: .dataset)
            width = try c.decodeIfPresent(Int.self, forKey: .width)
            epochs = try c.decodeIfPresent(Int.self, forKey: .epochs)
            batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize)
            trainLimit = try c.decodeIfPresent(Int.self, forKey: .trainLimit)
            testLimit = try c.decodeIfPresent(Int.self, forKey: .testLimit)
            validationSize = try c.decodeIfPresent(Int.self, forKey: .validationSize)
            learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate)
            momentum = try c.decodeIfPresent(Double.self, forKey: .momentum)
            weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay)
            schedule = try c.decodeIfPresent(String.self, forKey: .schedule)
            milestones = try c.decodeIfPresent([Int].self, forKey: .milestones)
            gamma = try c.decodeIfPresent(Double.self, forKey: .gamma)
            augment = try c.decodeIfPresent(Bool.self, forKey: .augment)
            precision = try c.decodeIfPresent(String.self, forKey: .precision)
            hanEpochs = try c.decodeIfPresent(Int.self, forKey: .hanEpochs)
            hanLearningRate = try c.decodeIfPresent(Double.self, forKey: .hanLearningRate)
            hanMilestones = try c.decodeIfPresent([Int].self, forKey: .hanMilestones)
        }

        /// These overrides with `settings` (`FIELD=VALUE`, VALUE as JSON or a bare word) on top.
        public func setting(_ settings: [String]) throws(SweepError) -> Overrides {
            guard !settings.isEmpty else { return self }
            var object: [String: Any]
            do { object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as? [String: Any] ?? [:] } catch {
                throw .invalid("overrides cannot be encoded: \(error)")
            }
            for setting in settings {
                let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty else { throw .invalid("--set \(setting): write FIELD=VALUE, e.g. --set epochs=4") }
                let value = (try? JSONSerialization.jsonObject(with: Data(parts[1].utf8), options: .fragmentsAllowed)) ?? parts[1]
                object[parts[0]] = value
            }
            do {
                return try JSONDecoder().decode(Overrides.self, from: JSONSerialization.data(withJSONObject: object))
            } catch let DecodingError.dataCorrupted(context) {
                throw .invalid("--set: field \(context.codingPath.map(\.stringValue).joined(separator: ".")) \(context.debugDescription)")
            } catch let DecodingError.typeMismatch(_, context) {
                throw .invalid("--set: field \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
            } catch {
                throw .invalid("--set: \(error)")
            }
        }
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
        "synflow-iters": SweepSpec(name: "synflow-iters", preset: "quick", seeds: [42, 43, 44], dense: true,
                                   synflowIterations: [1, 10, 20, 100], synflowDensities: [0.1, 0.05, 0.01]),
        "seeds": SweepSpec(name: "seeds", preset: "paper", seeds: [42, 43, 44], dense: true, lotteryRounds: 9, hanIterations: 7),
        "baselines": SweepSpec(name: "baselines", preset: "quick", seeds: [42, 43, 44], dense: true,
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
        if let v = o.dataset {
            guard let dataset = TrainingConfig.Dataset(rawValue: v) else {
                throw .invalid("overrides: dataset \(v.debugDescription) is not one of \(TrainingConfig.Dataset.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            preset.training.dataset = dataset
            if dataset != .synthetic { preset.training.synthetic = nil }
        }
        if let v = o.width { preset.training.width = v }
        if let v = o.epochs { preset.training.epochs = v }
        if let v = o.batchSize { preset.training.batchSize = v }
        if let v = o.trainLimit { preset.training.trainLimit = v }
        if let v = o.testLimit { preset.training.testLimit = v }
        if let v = o.validationSize { preset.training.validationSize = v }
        if let v = o.learningRate { preset.training.learningRate = v }
        if let v = o.momentum { preset.training.optimizer.momentum = Float(v) }
        if let v = o.weightDecay { preset.training.optimizer.weightDecay = Float(v) }
        if let v = o.augment { preset.training.augment = v }
        if let v = o.precision {
            guard let precision = Precision(rawValue: v) else {
                throw .invalid("overrides: precision \(v.debugDescription) is not one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            preset.training.precision = precision
        }
        switch o.schedule {
        case nil: break
        case "cosine": preset.training.schedule = .cosine
        case "constant": preset.training.schedule = .constant
        case "multistep": preset.training.schedule = .multiStep(milestones: o.milestones ?? [], gamma: o.gamma ?? 0.2)
        case let other?: throw .invalid("overrides: schedule \(other.debugDescription) is not one of cosine, constant, multistep")
        }
        if o.schedule != "multistep" && (o.milestones != nil || o.gamma != nil) {
            throw .invalid("overrides: milestones and gamma need schedule multistep")
        }
        if let v = o.hanEpochs { preset.hanEpochs = v }
        if let v = o.hanLearningRate { preset.hanLearningRate = v }
        if let v = o.hanMilestones { preset.hanMilestones = v }
        guard preset.hanEpochs >= 1, preset.hanLearningRate > 0 else { throw .invalid("overrides: hanEpochs must be ≥ 1 and hanLearningRate > 0") }
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
