/// What runs the training steps and evaluations of a `Trainer`: the CPU (`CPUEngine`) or a
/// GPU (`CUDAEngine`). The trainer owns everything else — the schedule, the random streams,
/// the batch plans, checkpoints — so a run can move between devices at any epoch boundary.
///
/// The host `ResNet18` is the state of record: an engine that keeps the state elsewhere copies
/// it back in `synchronizeHost()` before the trainer reads or saves it, and reloads it in
/// `synchronizeDevice()` after the trainer changed it.
public protocol TrainingEngine: AnyObject {
    /// The device in words, for logs and results ("cpu", "cuda:0 NVIDIA H200").
    var deviceName: String { get }
    /// The arithmetic the engine uses ("fp32" or "tf32").
    var precisionName: String { get }
    /// Whether training steps ran as CUDA graphs; nil where there are none (the CPU).
    var usedCUDAGraphs: Bool? { get }
    /// Trains on every batch of `plans` in order, the i-th with `learningRates[i]`; the first
    /// step initialises the momentum buffers unless `momentumInitialized`. Returns the sum of
    /// the per-image losses and the number of correct top-1 predictions.
    func trainEpoch(_ plans: [BatchPlan], learningRates: [Float], momentumInitialized: Bool) throws(ModelError) -> (lossSum: Double, correct: Int)
    /// The loss sum and correct predictions over a split, in evaluation mode.
    func evaluate(_ split: EvaluationSplit) throws(ModelError) -> (lossSum: Double, correct: Int)
    /// Copies the engine's state into the host network.
    func synchronizeHost() throws(ModelError)
    /// Loads the host network's state (weights, buffers, momenta, masks) into the engine.
    func synchronizeDevice() throws(ModelError)
}

/// The held-out images an engine evaluates on.
public enum EvaluationSplit: Sendable {
    case validation, test
}

/// The CPU engine: the `ResNet18` itself, its BLAS convolutions and the batch assembler.
public final class CPUEngine: TrainingEngine {
    private let network: ResNet18
    private let data: DataSplits
    private let config: TrainingConfig
    private let assembler = BatchAssembler()
    private let loss = CrossEntropy()

    /// An engine training `network` on `data` with `config`'s optimiser and batch size.
    public init(network: ResNet18, data: DataSplits, config: TrainingConfig) {
        self.network = network
        self.data = data
        self.config = config
    }

    public var deviceName: String { "cpu" }
    public var precisionName: String { Precision.fp32.rawValue }
    public var usedCUDAGraphs: Bool? { nil }

    public func trainEpoch(_ plans: [BatchPlan], learningRates: [Float], momentumInitialized: Bool) throws(ModelError) -> (lossSum: Double, correct: Int) {
        var lossSum = 0.0, correct = 0
        for (step, plan) in plans.enumerated() {
            let x = StepProfile.measure(.batchAssembly) { assembler.assemble(data.train, plan: plan) }
            let logits = network.forward(x, training: true)
            let result = StepProfile.measure(.loss) { assembler.labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) } }
            network.backward(loss.backward(like: logits))
            StepProfile.measure(.sgd) {
                config.optimizer.step(network.parameters, learningRate: learningRates[step], firstStep: step == 0 && !momentumInitialized)
            }
            lossSum += result.loss * Double(plan.indices.count)
            correct += result.correct
        }
        return (lossSum, correct)
    }

    public func evaluate(_ split: EvaluationSplit) throws(ModelError) -> (lossSum: Double, correct: Int) {
        let dataset = split == .test ? data.test : data.validation
        var lossSum = 0.0, correct = 0
        var noAugmentation: RandomStream? = nil
        for first in stride(from: 0, to: dataset.count, by: config.batchSize) {
            let plan = BatchPlan(dataset, indices: (first..<Swift.min(first + config.batchSize, dataset.count)).map { $0 }[...], random: &noAugmentation)
            let logits = network.forward(assembler.assemble(dataset, plan: plan), training: false)
            let result = assembler.labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) }
            lossSum += result.loss * Double(plan.indices.count)
            correct += result.correct
        }
        return (lossSum, correct)
    }

    public func synchronizeHost() throws(ModelError) {}
    public func synchronizeDevice() throws(ModelError) {}
}
