import Model

/// A named training setting a sweep runs on: the dense recipe every method trains with, and
/// the Han fine-tuning recipe. Every field can be overridden by the sweep.
public struct Preset: Codable, Hashable, Sendable {
    /// The preset's name.
    public var name: String
    /// The dense recipe (also the recipe of every retraining after a prune).
    public var training: TrainingConfig
    /// Han et al.'s fine-tuning: epochs, base rate and milestones (the study: 100, 0.01, [50, 75]).
    public var hanEpochs: Int, hanLearningRate: Double, hanMilestones: [Int]

    /// The study's setting for real clusters: CIFAR-10, width 64, 200 epochs.
    public static let paper = Preset(name: "paper", training: TrainingConfig(), hanEpochs: 100, hanLearningRate: 0.01, hanMilestones: [50, 75])

    /// Fashion-MNIST (offline), width 16, 6,000 training images, 2 epochs with cosine decay:
    /// the full `synflow-iters` sweep fits a 2-core machine.
    public static let quick = Preset(
        name: "quick",
        training: TrainingConfig(dataset: .fashionMNIST, width: 16, epochs: 2, schedule: .cosine, validationSize: 1000,
                                 trainLimit: 6000, testLimit: 2000),
        hanEpochs: 1, hanLearningRate: 0.01, hanMilestones: [])

    /// Synthetic data and a width-4 network: seconds per task, for tests.
    public static let smoke = Preset(
        name: "smoke",
        training: TrainingConfig(dataset: .synthetic, width: 4, epochs: 2, batchSize: 32, learningRate: 0.05, schedule: .cosine,
                                 validationSize: 64, synthetic: .init(trainCount: 256, testCount: 64, side: 16)),
        hanEpochs: 1, hanLearningRate: 0.01, hanMilestones: [])

    /// The built-in presets by name.
    public static let builtIn: [String: Preset] = ["paper": paper, "quick": quick, "smoke": smoke]

    /// The Han fine-tuning configuration derived from the dense recipe.
    public func hanTraining(seed: UInt64) -> TrainingConfig {
        var config = training
        config.seed = seed
        config.epochs = hanEpochs
        config.learningRate = hanLearningRate
        config.schedule = .multiStep(milestones: hanMilestones, gamma: 0.2)
        return config
    }
}
