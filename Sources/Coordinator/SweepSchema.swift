import TaskRuntime

/// What a sweep file may say: the preset fields any experiment can fix or vary, and the
/// methods with their options. Every key a sweep names is checked here, so a typo or a value
/// out of range is refused before anything runs, with the valid choices in the message.
public enum SweepSchema {
    /// The values a key takes.
    public enum Kind: Sendable, Equatable {
        /// A whole number in `min...max`.
        case whole(min: Int, max: Int?)
        /// A number > 0.
        case positive
        /// A number ≥ 0.
        case nonNegative
        /// A fraction kept, in (0, 1].
        case fraction
        /// A rate, in (0, 1).
        case rate
        /// One of these words.
        case word([String])
        /// true or false.
        case flag
        /// A list (milestones): it can be set, not varied.
        case list

        /// What the key needs, for messages ("a whole number ≥ 1").
        public var requirement: String {
            switch self {
            case .whole(let min, nil): "a whole number ≥ \(min)"
            case .whole(let min, let max?): "a whole number in \(min)...\(max)"
            case .positive: "a number > 0"
            case .nonNegative: "a number ≥ 0"
            case .fraction: "a fraction kept in (0, 1], not a percentage (5 % is 0.05)"
            case .rate: "a fraction in (0, 1)"
            case .word(let words): "one of \(words.joined(separator: ", "))"
            case .flag: "true or false"
            case .list: "a list"
            }
        }

        /// Whether `value` is valid.
        public func accepts(_ value: AxisValue) -> Bool {
            switch (self, value) {
            case let (.whole(min, max), .number(x)): x == x.rounded() && x >= Double(min) && x <= Double(max ?? Int.max)
            case let (.positive, .number(x)): x > 0 && x.isFinite
            case let (.nonNegative, .number(x)): x >= 0 && x.isFinite
            case let (.fraction, .number(x)): x > 0 && x <= 1
            case let (.rate, .number(x)): x > 0 && x < 1
            case let (.word(words), .text(word)): words.contains(word)
            case (.flag, .flag): true
            default: false
            }
        }
    }

    /// The preset fields (`Preset`, `SweepSpec.Overrides`) a sweep can fix with `set` or vary in a `grid`.
    public static let presetFields: [String: Kind] = [
        "dataset": .word(["cifar10", "fashion-mnist", "synthetic"]), "width": .whole(min: 1, max: nil), "epochs": .whole(min: 1, max: nil),
        "batchSize": .whole(min: 1, max: nil), "trainLimit": .whole(min: 1, max: nil), "testLimit": .whole(min: 1, max: nil),
        "validationSize": .whole(min: 0, max: nil), "learningRate": .positive, "momentum": .nonNegative, "weightDecay": .nonNegative,
        "schedule": .word(["constant", "cosine", "multistep"]), "milestones": .list, "gamma": .positive, "augment": .flag,
        "precision": .word(["fp32", "tf32"]), "hanEpochs": .whole(min: 1, max: nil), "hanLearningRate": .positive, "hanMilestones": .list,
    ]

    /// Preset fields that change only Han's fine-tuning, not the dense recipe.
    static let hanFields: Set = ["hanEpochs", "hanLearningRate", "hanMilestones"]
    /// Preset fields that change the network θ0 is drawn for.
    static let architectureFields: Set = ["width", "dataset"]

    /// A method a sweep experiment can run, with its options.
    public struct Method: Sendable {
        /// Its options and what each takes.
        public var options: [String: Kind]
        /// Options without a default, which the experiment must fix or vary.
        public var required: [String]
        /// The defaults of the others (`worker prune`'s).
        public var defaults: [String: AxisValue]
    }

    private static let scope = Kind.word(["global", "layerwise"])

    /// The methods by name.
    public static let methods: [String: Method] = [
        "dense": Method(options: [:], required: [], defaults: [:]),
        "lottery-ticket": Method(
            options: ["rounds": .whole(min: 1, max: 100), "rate": .rate, "scope": scope, "keepClassifier": .flag, "rewindEpoch": .whole(min: 0, max: nil)],
            required: ["rounds"],
            defaults: ["rate": .number(0.2), "scope": .text("layerwise"), "keepClassifier": .flag(false), "rewindEpoch": .number(0)]),
        "han": Method(options: ["iterations": .whole(min: 1, max: 100), "quality": .positive], required: ["iterations"],
                      defaults: ["quality": .number(1)]),
        "synflow": Method(
            options: ["density": .fraction, "iterations": .whole(min: 1, max: 1000), "schedule": .word(["exponential", "linear"]), "scope": scope],
            required: ["density"],
            defaults: ["iterations": .number(100), "schedule": .text("exponential"), "scope": .text("global")]),
        "random": Method(options: ["density": .fraction, "scope": scope], required: ["density"], defaults: ["scope": .text("global")]),
        "magnitude-at-init": Method(options: ["density": .fraction, "scope": scope], required: ["density"], defaults: ["scope": .text("global")]),
        "snip": Method(options: ["density": .fraction, "examplesPerClass": .whole(min: 1, max: nil), "scope": scope], required: ["density"],
                       defaults: ["examplesPerClass": .number(10), "scope": .text("global")]),
    ]

    /// Keys of result rows that an axis must not shadow.
    static let reservedNames: Set = ["method", "options", "seed", "round", "targetDensity"]

    /// `value` as a sweep file writes it (words quoted), for messages.
    static func written(_ value: AxisValue) -> String {
        if case .text(let word) = value { return word.debugDescription }
        return value.description
    }
}
