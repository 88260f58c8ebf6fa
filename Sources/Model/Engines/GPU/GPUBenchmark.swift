import Foundation

/// `worker bench --device cuda`: ResNet18 training and evaluation throughput on a GPU at one
/// precision and batch size, on random images already on the device (as PyTorch's anchor
/// script measures), with the step's split between cuDNN/cuBLAS and PruneSweep's kernels.
public enum GPUBenchmark {
    /// What to measure.
    public struct Options: Sendable {
        /// Network width, images per step, timed steps, image side, precision.
        public var width = 64, batchSize = 128, steps = 40, imageSize = 32
        public var precision = Precision.tf32
        /// Also time the same steps launched one by one instead of as captured graphs.
        public var compareEager = true

        /// Width 64, batch 128, 40 steps, 32×32, TF32, with the eager comparison.
        public init() {}
    }

    /// What a run measured, and how: the figures, the convolution algorithms the timed engine
    /// chose (one line per shape) and whether its steps ran as CUDA graphs.
    public struct Result: Sendable {
        public var lines: [Benchmark.Line], algorithms: [String], cudaGraphs: Bool?
    }

    /// The convolution algorithms a run with `options` chooses, without running it: the same
    /// network and batch, prepared on a fresh engine network (the self-test compares them with
    /// a bench's, made in another process).
    public static func convolutionAlgorithms(on device: CUDADevice, _ options: Options) throws(GPUError) -> [String] {
        let host = ResNet18(.init(width: options.width, inputChannels: 3, classes: 10))
        let network = try GPUNetwork(device: device, host: host, precision: options.precision, maxBatch: options.batchSize,
                                     imageHeight: options.imageSize, imageWidth: options.imageSize)
        try network.prepare(n: options.batchSize)
        return network.algorithmChoices
    }

    /// Runs the measurements; `progress` receives each line as it is measured.
    public static func run(on device: CUDADevice, _ options: Options, progress: (Benchmark.Line) -> Void) throws(ModelError) -> Result {
        var lines: [Benchmark.Line] = []
        func record(_ name: String, _ value: Double, _ unit: String) {
            let line = Benchmark.Line(name: name, value: value, unit: unit)
            lines.append(line)
            progress(line)
        }
        func gpu<T>(_ body: () throws(GPUError) -> T) throws(ModelError) -> T {
            do { return try body() } catch { throw .device(error) }
        }
        let baseline = try gpu { () throws(GPUError) in try device.memoryInUse() }
        let batch = options.batchSize, side = options.imageSize
        var random = RandomStream(seed: 1, stream: .synthetic)
        func images(_ count: Int, _ name: String) throws(ModelError) -> ImageDataset {
            try ImageDataset(name: name, channels: 3, height: side, width: side, classes: 10,
                             pixels: (0..<(count * 3 * side * side)).map { _ in UInt8(truncatingIfNeeded: random.next()) },
                             labels: (0..<count).map { Int32($0 % 10) }, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
        }
        let data = try DataSplits(trainFiles: try images(options.steps * batch, "bench/train"), test: try images(10 * batch, "bench/test"),
                                  validationSize: 0)
        let config = TrainingConfig(dataset: .synthetic, width: options.width, epochs: 1, batchSize: batch, validationSize: 0,
                                    synthetic: .init(trainCount: options.steps * batch, testCount: 10 * batch, side: side), precision: options.precision)
        let host = ResNet18(.init(width: options.width, inputChannels: 3, classes: 10))
        host.initialise(seed: 0)
        var shuffle = RandomStream(seed: 0, stream: .shuffle)
        var augmentation: RandomStream? = RandomStream(seed: 0, stream: .augmentation)
        let plans = Trainer.epochPlans(data.train, batchSize: batch, shuffle: &shuffle, augmentation: &augmentation)
        let rates = [Float](repeating: 0.01, count: plans.count)

        /// Seconds of one epoch of `plans` after a three-step warm-up (eager, capture, replay).
        func timedEpoch(_ engine: CUDAEngine) throws(ModelError) -> Double {
            _ = try engine.trainEpoch(Array(plans.prefix(3)), learningRates: Array(rates.prefix(3)), momentumInitialized: false)
            let start = Date()
            _ = try engine.trainEpoch(plans, learningRates: rates, momentumInitialized: true)
            return Date().timeIntervalSince(start)
        }
        let engine = try gpu { () throws(GPUError) in
            try CUDAEngine(device: device, network: host, data: data, config: config, precision: options.precision, graphs: true)
        }
        try engine.synchronizeDevice()
        let seconds = try timedEpoch(engine)
        let label = "\(options.precision.rawValue), width \(options.width), batch \(batch)"
        record("training (\(label), CUDA graphs)", Double(plans.count * batch) / seconds, "images/s")
        record("training step", 1000 * seconds / Double(plans.count), "ms")
        if let failure = engine.graphFailure { progress(Benchmark.Line(name: "note: \(failure)", value: 0, unit: "")) }
        let algorithms = engine.convolutionAlgorithms, cudaGraphs = engine.usedCUDAGraphs

        _ = try engine.evaluate(.test)
        let evaluationStart = Date()
        _ = try engine.evaluate(.test)
        record("evaluation (\(label))", Double(data.test.count) / Date().timeIntervalSince(evaluationStart), "images/s")

        let split = try gpu { () throws(GPUError) in try engine.profileStep(plans[0], learningRate: 0.01) }
        let profiled = split.values.reduce(0, +)
        for category in GPUProfile.Category.allCases {
            record("share of a step in \(category.rawValue)", 100 * (split[category] ?? 0) / Swift.max(profiled, 1e-9), "%")
        }
        record("GPU memory used by the run", Double(try gpu { () throws(GPUError) in try device.memoryInUse() } - baseline) / 1_048_576, "MiB")

        if options.compareEager {
            let eager = try gpu { () throws(GPUError) in
                try CUDAEngine(device: device, network: host, data: data, config: config, precision: options.precision, graphs: false)
            }
            try eager.synchronizeDevice()
            let eagerSeconds = try timedEpoch(eager)
            record("training (\(label), eager launches)", Double(plans.count * batch) / eagerSeconds, "images/s")
            record("CUDA graphs / eager", eagerSeconds / seconds, "ratio")
        }
        return Result(lines: lines, algorithms: algorithms, cudaGraphs: cudaGraphs)
    }
}
