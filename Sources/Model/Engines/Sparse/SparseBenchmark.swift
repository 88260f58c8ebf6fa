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
        /// Image channels: 3 (CIFAR-10) or 1 (Fashion-MNIST, the quick preset's data).
        public var inputChannels = 3
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
        /// The share of the convolutions' multiply-adds the masks keep (`keptWork(of:height:width:)`).
        public var keptWork: Double
        /// The process's peak resident memory when done, MiB.
        public var peakResidentMiB: Double
        /// Where a training step's time went in the last round, dense and sparse (the parts
        /// either engine spent time in, in step order).
        public var profile: [PartTimes]

        /// Sparse over dense images/s.
        public var trainingSpeedUp: Double { sparseTraining / denseTraining }
        /// Sparse over dense images/s.
        public var evaluationSpeedUp: Double { sparseEvaluation / denseEvaluation }
        /// The most that skipping the pruned weights' multiply-adds can make the convolutions
        /// faster, were the sparse kernels exactly as fast per multiply-add as the dense ones.
        public var workBound: Double { 1 / keptWork }
    }

    /// The share of all the convolutions' multiply-adds (forward, each per image) that `network`'s
    /// masks keep, on `height`×`width` images; an unmasked convolution keeps all of its own.
    ///
    /// Pruning methods keep very different shares of each layer: SynFlow at 5% keeps ~70% of
    /// stage 1, whose 32×32 positions make it the costliest, and ~2% of stage 4. The share of the
    /// work is what bounds a sparse engine's gain, not the share of the weights: the dense
    /// kernels run near the core's peak, so sparse ones can at best match them per multiply-add.
    public static func keptWork(of network: ResNet18, height: Int, width: Int) -> Double {
        var kept = 0.0, all = 0.0
        for (conv, h, w) in network.convolutionInputs(height: height, width: width) {
            let work = Double(conv.multiplyAdds(height: h, width: w))
            all += work
            kept += work * conv.weight.density
        }
        return all > 0 ? kept / all : 1
    }

    /// Milliseconds per training step in one kind of work (`StepProfile.Part.name`).
    public struct PartTimes: Codable, Sendable {
        public var part: String, denseMilliseconds: Double, sparseMilliseconds: Double
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
        let network = ResNet18(.init(width: options.width, inputChannels: options.inputChannels, classes: 10))
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
        // As a training starts: the dense layers' chunks first, then the sparse verdicts against them.
        if let line = try ColumnChunkSelection.install(on: network, batch: options.batchSize, height: options.imageSize,
                                                       width: options.imageSize).line {
            log("width \(options.width): " + line)
        }
        if let line = try EvaluationRouteSelection.install(on: network, batch: options.batchSize, height: options.imageSize,
                                                           width: options.imageSize).line {
            log("width \(options.width): " + line)
        }
        let choice = try SparseSelection.install(on: network, batchSize: options.batchSize, height: options.imageSize,
                                                 width: options.imageSize, mode: .auto)
        guard let choice else { throw .invalidConfiguration("the masks left the network without a mask") }
        log("width \(options.width): " + choice.summary)
        let sparseLayers = network.convolutions.map(\.sparse)

        // The dense benchmark's synthetic data and training step (batch assembly included).
        let batch = options.batchSize
        let splits = try Benchmark.syntheticSplits(images: batch * options.steps, side: options.imageSize,
                                                     channels: options.inputChannels)
        let engine = CPUEngine(network: network, data: splits, config: TrainingConfig(batchSize: batch))
        let plans = Benchmark.syntheticPlans(splits.train, batchSize: batch)
        let learningRates = [Float](repeating: 0.01, count: plans.count)
        func use(sparse: Bool) {
            for (conv, path) in zip(network.convolutions, sparseLayers) { conv.sparse = sparse ? path : nil }
        }
        func rate(_ body: () throws(ModelError) -> Void) throws(ModelError) -> Double {
            let start = Date()
            try body()
            return Double(plans.count * batch) / Date().timeIntervalSince(start)
        }
        for sparse in [false, true] {
            use(sparse: sparse)
            _ = try engine.trainEpoch([plans[0]], learningRates: [0.01], momentumInitialized: false)
        }
        var rates: [[Double]] = [[], [], [], []]
        var profiles: [[StepProfile.Part: Double]] = [[:], [:]]
        for round in 1...options.rounds {
            var thisRound: [Double] = []
            for sparse in [false, true] {
                use(sparse: sparse)
                if round == options.rounds { StepProfile.start() }
                let training = try rate { () throws(ModelError) in
                    _ = try engine.trainEpoch(plans, learningRates: learningRates, momentumInitialized: true)
                }
                if round == options.rounds { profiles[sparse ? 1 : 0] = StepProfile.stop() }
                let evaluation = try rate { () throws(ModelError) in _ = try engine.evaluate(.test) }
                rates[sparse ? 1 : 0].append(training)
                rates[sparse ? 3 : 2].append(evaluation)
                thisRound += [training, evaluation]
            }
            log(String(format: "width %d round %d: training %.1f → %.1f images/s, evaluation %.1f → %.1f images/s", options.width,
                       round, thisRound[0], thisRound[2], thisRound[1], thisRound[3]))
        }
        let profile = StepProfile.Part.allCases.compactMap { part -> PartTimes? in
            let dense = 1000 * profiles[0][part, default: 0] / Double(plans.count), sparse = 1000 * profiles[1][part, default: 0] / Double(plans.count)
            return dense > 0 || sparse > 0 ? PartTimes(part: part.name, denseMilliseconds: dense, sparseMilliseconds: sparse) : nil
        }
        use(sparse: true)
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        return Result(width: options.width, density: maskSet.density, denseTraining: median(rates[0]), sparseTraining: median(rates[1]),
                      denseEvaluation: median(rates[2]), sparseEvaluation: median(rates[3]), choice: choice,
                      keptWork: keptWork(of: network, height: options.imageSize, width: options.imageSize),
                      peakResidentMiB: Benchmark.peakResidentMegabytes(), profile: profile)
    }
}
