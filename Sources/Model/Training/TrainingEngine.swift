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
