import Foundation

/// Dense and sparse training and evaluation of one masked ResNet18 side by side in one run:
/// the masks are installed, the per-layer choice is made as a training would make it, then
/// rounds of dense and sparse steps alternate (so a loaded machine slows both alike) and the
/// medians are compared.
public enum SparseBenchmark {
    /// What to measure.
    public struct Options: Sendable {
        /// Network width.
        public var width = 64
        /// Images per step.
        public var batchSize = 128
        /// Timed training steps per round (after one warm-up step of each engine).
        public var steps = 2
        /// Alternating rounds; the figures are medians over them.
        public var rounds = 3
        /// Image side.
        public var imageSize = 32
        /// SynFlow rounds for a mask made at `density` (when no mask file is given).
        public var synflowIterations = 20

        /// Width 64, batch 128, 2 steps, 3 rounds.
        public init() {}
    }

    /// The figures of one width.
    public struct Result: Codable, Sendable {
        /// Width and the masks' density over the prunable tensors.
        public var width: Int, density: Double
        /// Median images/s of training steps and evaluation passes.
        public var denseTraining: Double, sparseTraining: Double, denseEvaluation: Double, sparseEvaluation: Double
        /// The per-layer choice.
        public var choice: SparseChoice
        /// The process's peak resident memory when done, MiB.
        public var peakResidentMiB: Double

        /// Sparse over dense images/s.
        public var trainingSpeedUp: Double { sparseTraining / denseTraining }
        /// Sparse over dense images/s.
        public var evaluationSpeedUp: Double { sparseEvaluation / denseEvaluation }
    }

    /// Where the masks come from.
    public enum Masks {
        /// Iterative SynFlow (exponential schedule, global) to this density, from the seed-0 weights.
        case synflow(density: Double)
        /// A weights, checkpoint or mask file (`mask.NAME` or `NAME` tensors).
        case file(Safetensors, source: String)
    }

    /// Runs the comparison; `log` hears progress and the choice line.
    public static func run(_ options: Options, masks: Masks, log: (String) -> Void) throws(ModelError) -> Result {
        let network = ResNet18(.init(width: options.width, inputChannels: 3, classes: 10))
        network.initialise(seed: 0)
        let maskSet: MaskSet
        switch masks {
        case .synflow(let density):
            guard density > 0 && density <= 1 else { throw .invalidConfiguration("--density \(density) must be in (0, 1]") }
            let start = Date()
            maskSet = SynFlow.prune(network, inputSide: options.imageSize, density: density, iterations: options.synflowIterations)
            log(String(format: "width %d: SynFlow mask to density %.4f (%d rounds) in %.0f s", options.width, maskSet.density,
                       options.synflowIterations, Date().timeIntervalSince(start)))
        case .file(let file, let source):
            maskSet = try MaskSet(from: file, for: network, source: source)
        }
        try maskSet.apply(to: network)
        let choice = try SparseSelection.install(on: network, batchSize: options.batchSize, height: options.imageSize,
                                                 width: options.imageSize, mode: .auto)
        guard let choice else { throw .invalidConfiguration("the masks left the network without a mask") }
        log("width \(options.width): " + choice.summary)
        let sparseLayers = network.convolutions.map(\.sparse)

        let batch = options.batchSize, size = options.imageSize
        var random = RandomStream(seed: 1, stream: .synthetic)
        let input = Tensor(shape: [batch, 3, size, size])
        for i in 0..<input.count { input[i] = random.nextSymmetric(1) }
        let labels = (0..<batch).map { Int32($0 % 10) }
        let space = Workspace()
        let x = FeatureMap.channelMajor(fromNCHW: input.pointer, batch: batch, channels: 3, height: size, width: size, into: space)
        let loss = CrossEntropy()
        let sgd = SGD()
        func trainStep() {
            let logits = network.forward(x, training: true)
            _ = labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) }
            network.backward(loss.backward(like: logits))
            sgd.step(network.parameters, learningRate: 0.01, firstStep: false)
        }
        func use(sparse: Bool) {
            for (conv, path) in zip(network.convolutions, sparseLayers) { conv.sparse = sparse ? path : nil }
        }
        func rate(_ body: () -> Void) -> Double {
            let start = Date()
            for _ in 0..<options.steps { body() }
            return Double(options.steps * batch) / Date().timeIntervalSince(start)
        }
        for sparse in [false, true] {
            use(sparse: sparse)
            trainStep()
        }
        var rates: [[Double]] = [[], [], [], []]
        for round in 1...options.rounds {
            for sparse in [false, true] {
                use(sparse: sparse)
                rates[sparse ? 1 : 0].append(rate(trainStep))
                rates[sparse ? 3 : 2].append(rate { _ = network.forward(x, training: false) })
            }
            log(String(format: "width %d round %d: training %.1f → %.1f images/s, evaluation %.1f → %.1f images/s", options.width,
                       round, rates[0].last!, rates[1].last!, rates[2].last!, rates[3].last!))
        }
        use(sparse: true)
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        return Result(width: options.width, density: maskSet.density, denseTraining: median(rates[0]), sparseTraining: median(rates[1]),
                      denseEvaluation: median(rates[2]), sparseEvaluation: median(rates[3]), choice: choice,
                      peakResidentMiB: Benchmark.peakResidentMegabytes())
    }
}
