import Crypto
import Foundation
import Model

/// One unit of a sweep: a step, the tasks whose outputs it consumes (by role), and the labels
/// that place its result in the tables. Its id is the hash of the step and of its inputs' ids,
/// so identical work in different parts of a sweep is one task.
public struct TaskSpec: Codable, Hashable, Sendable {
    /// What the task computes.
    public enum Step: Codable, Hashable, Sendable {
        /// θ0 of a seed → `weights`.
        case initialise(ResNet18.Architecture, seed: UInt64)
        /// Training from `initial` weights under an optional `mask` → `weights`, `metrics`.
        case train(TrainingConfig)
        /// A prune of `weights` (and the previous `mask`) → `mask`; `data` names the network's
        /// input and, for SNIP, the images it scores on.
        case prune(PruningMethod, data: TrainingConfig)
    }

    /// Where the result belongs in the study's tables (not part of the identity).
    public struct Labels: Codable, Hashable, Sendable {
        /// The method family ("dense", "lottery-ticket", "han", "synflow", "random", …).
        public var method: String
        /// The options that distinguish runs of the method ("T=100", "" …).
        public var options: String
        /// The run seed.
        public var seed: UInt64
        /// The LTH round or Han iteration (0 for single-shot methods).
        public var round: Int
        /// The density the step aims at, when preset (nil for Han, whose density is realised).
        public var targetDensity: Double?
        /// Whether this task's result is a row of the results table (training tasks).
        public var reported: Bool
        /// The value of every sweep axis (a grid key of the sweep or of the task's experiment)
        /// at this task's point, by axis name; empty for sweeps without axes.
        public var axes: [String: AxisValue]

        /// Labels for a result of `method` with `options`, `seed` and `round`.
        public init(method: String, options: String, seed: UInt64, round: Int, targetDensity: Double?, reported: Bool,
                    axes: [String: AxisValue] = [:]) {
            self.method = method
            self.options = options
            self.seed = seed
            self.round = round
            self.targetDensity = targetDensity
            self.reported = reported
            self.axes = axes
        }

        private enum CodingKeys: String, CodingKey { case method, options, seed, round, targetDensity, reported, axes }

        /// Decodes labels; journals written before axes existed decode with none.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(method: try c.decode(String.self, forKey: .method), options: try c.decode(String.self, forKey: .options),
                      seed: try c.decode(UInt64.self, forKey: .seed), round: try c.decode(Int.self, forKey: .round),
                      targetDensity: try c.decodeIfPresent(Double.self, forKey: .targetDensity),
                      reported: try c.decode(Bool.self, forKey: .reported),
                      axes: try c.decodeIfPresent([String: AxisValue].self, forKey: .axes) ?? [:])
        }
    }

    /// The step.
    public var step: Step
    /// Input task ids by role ("initial", "mask", "weights").
    public var inputs: [String: String]
    /// The result labels.
    public var labels: Labels

    /// A task computing `step` from the outputs of the tasks named in `inputs`.
    public init(step: Step, inputs: [String: String], labels: Labels) {
        self.step = step
        self.inputs = inputs
        self.labels = labels
    }

    /// A one-line description for progress output, e.g. "train synflow T=100 seed 42 d=0.05"; the
    /// density has four significant digits, so 0.8³ (0.5120000000000001 in binary) reads 0.512.
    public var summary: String {
        let kind = switch step { case .initialise: "init"; case .train: "train"; case .prune: "prune" }
        var parts = labels.method == kind ? [kind] : [kind, labels.method]
        if !labels.options.isEmpty { parts.append(labels.options) }
        parts.append("seed \(labels.seed)")
        if labels.round > 0 { parts.append("round \(labels.round)") }
        if let density = labels.targetDensity, density < 1 { parts.append("d=" + String(format: "%.4g", density)) }
        return parts.joined(separator: " ")
    }

    /// The content hash of the step and the inputs' ids.
    public var id: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = (try? encoder.encode(step)) ?? Data()
        for (role, input) in inputs.sorted(by: { $0.key < $1.key }) { data.append(Data("|\(role)=\(input)".utf8)) }
        return SHA256.hash(data: data).hexDigits
    }
}
