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
            let x = StepProfile.measure(.batchAssembly) { assembler.assemble(dataset, plan: plan) }
            let logits = network.forward(x, training: false)
            let result = StepProfile.measure(.loss) { assembler.labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) } }
            lossSum += result.loss * Double(plan.indices.count)
            correct += result.correct
        }
        return (lossSum, correct)
    }

    public func synchronizeHost() throws(ModelError) {}
    public func synchronizeDevice() throws(ModelError) {}
}
