import Foundation

/// Measures what limits training speed: the BLAS alone, on a square product and on the
/// network's own GEMM shapes, then full training and evaluation steps of ResNet18 on random
/// data, with the share of time spent inside GEMM, the engine and chunking of each
/// convolution shape, and the memory of each part of the network.
public struct Benchmark {
    /// What to measure.
    public struct Options: Sendable {
        /// Network width (64 = the paper).
        public var width = 64
        /// Images per step.
        public var batchSize = 128
        /// Timed training steps (after one warm-up step).
        public var steps = 3
        /// Image side (32 for CIFAR).
        public var imageSize = 32
        /// Column-matrix chunk budget of every convolution, in floats (nil: each layer's own).
        public var columnChunkElements: Int?
        /// The direct convolutions' vector level (0: every convolution through im2col and GEMM).
        public var directLevel = Conv2d.availableDirectLevel

        /// The defaults: width 64, batch 128, 3 steps, 32×32 images.
        public init() {}
    }

    /// One measured figure.
    public struct Line: Codable, Sendable {
        /// What was measured.
        public var name: String
        /// The value, already in `unit`.
        public var value: Double
        /// The unit, e.g. "GFLOP/s".
        public var unit: String
    }

    /// How the convolutions of one shape run.
    public struct ConvolutionShape: Codable, Sendable {
        /// The layers of this shape, e.g. `layer1.0.conv1` … (PyTorch names without `.weight`).
        public var layers: [String]
        /// In → out channels, kernel, stride and input side, e.g. "64→128 3×3 s2 32²".
        public var shape: String
        /// The engine of each product, e.g. "forward OpenBLAS, weight grad oneDNN, input grad oneDNN".
        public var engine: String
        /// How the input gradient is formed: "transposed conv", "col2im", "direct GEMM", or
        /// "none (data)" for the stem.
        public var inputGradient: String
        /// Chunks per batch, images in the largest chunk and that chunk's column matrix in MiB
        /// (0 when the input is used as the column matrix).
        public var chunks: Int, imagesPerChunk: Int, columnMiB: Double
        /// The forward product per chunk, M×N×K, or "direct" (no product).
        public var forwardGEMM: String
    }

    /// The figures, in the order they were measured.
    public private(set) var lines: [Line] = []
    /// Every distinct convolution shape of the network, in network order.
    public private(set) var convolutions: [ConvolutionShape] = []
    /// The training step's time by kind of work, in step order, then what no part covers.
    public private(set) var profile: [ProfileLine] = []
    /// The same for evaluation, per batch: the parts it has (no backward pass), then what no part covers.
    public private(set) var evaluationProfile: [ProfileLine] = []

    /// One kind of work's time in the timed training steps.
    public struct ProfileLine: Codable, Sendable {
        /// The kind of work (`StepProfile.Part.name`).
        public var part: String
        /// Whether it is the convolutions' own arithmetic.
        public var isConvolutionArithmetic: Bool
        /// Milliseconds per step, and percent of the step.
        public var millisecondsPerStep: Double, share: Double
    }

    /// Runs every measurement; `progress` receives each line as it is measured, `note` what
    /// else a training would log (the GEMM routing measured for this network).
    public static func run(_ options: Options, progress: (Line) -> Void, note: (String) -> Void = { _ in }) throws(ModelError) -> Benchmark {
        var result = Benchmark()
        func record(_ name: String, _ value: Double, _ unit: String) {
            let line = Line(name: name, value: value, unit: unit)
            result.lines.append(line)
            progress(line)
        }

        record("sgemm 2048×2048×2048", gemmRate(m: 2048, n: 2048, k: 2048), "GFLOP/s")
        let network = ResNet18(.init(width: options.width, inputChannels: 3, classes: 10))
        network.initialise(seed: 0)
        for conv in network.convolutions {
            if let budget = options.columnChunkElements { conv.columnChunkElements = budget }
            conv.directLevel = options.directLevel
        }
        if let line = GEMMEngineSelection.choose(for: network, batch: options.batchSize, side: options.imageSize, threads: BLAS.threads) {
            note(line)
        }
        if options.columnChunkElements == nil,
           let line = try ColumnChunkSelection.install(on: network, batch: options.batchSize, height: options.imageSize, width: options.imageSize).line {
            note(line)
        }
        if let line = try EvaluationRouteSelection.install(on: network, batch: options.batchSize, height: options.imageSize,
                                                           width: options.imageSize).line {
            note(line)
        }
        result.convolutions = convolutionShapes(network, batch: options.batchSize, size: options.imageSize)
        let shapeRate = networkShapeRate(network, batch: options.batchSize, size: options.imageSize)
        record("sgemm on the network's conv GEMM shapes (time-weighted)", shapeRate, "GFLOP/s")

        let batch = options.batchSize, size = options.imageSize
        let splits = try syntheticSplits(images: batch * options.steps, side: size)
        let engine = CPUEngine(network: network, data: splits, config: TrainingConfig(batchSize: batch))
        let plans = syntheticPlans(splits.train, batchSize: batch)
        let rates = [Float](repeating: 0.01, count: plans.count)
        // One warm-up step sizes every buffer; its batch is trained again in the timed ones.
        _ = try engine.trainEpoch([plans[0]], learningRates: [0.01], momentumInitialized: false)
        BLAS.resetUsage()
        StepProfile.start()
        let start = Date(), cpuStart = processorSeconds()
        _ = try engine.trainEpoch(plans, learningRates: rates, momentumInitialized: true)
        let seconds = Date().timeIntervalSince(start), cpuSeconds = processorSeconds() - cpuStart
        let parts = StepProfile.stop()
        let gemm = BLAS.usage.total
        let images = Double(plans.count * batch)
        let flopsPerImage = 6 * Double(network.multiplyAddsPerImage(height: size, width: size))
        let trainingRate = flopsPerImage * images / seconds / 1e9
        record("training (width \(options.width), batch \(batch))", images / seconds, "images/s")
        // On a shared machine the wall rate falls with the load; the rate per CPU-second of
        // this process falls much less (with one thread, hardly at all), so it compares builds.
        record("training per CPU-second of this process", images / cpuSeconds, "images/s")
        record("training effective (3 × 2 × MACs per image)", trainingRate, "GFLOP/s")
        record("training / BLAS on the network's shapes", trainingRate / shapeRate, "ratio")
        record("time inside GEMM", 100 * gemm.seconds / seconds, "%")
        record("GEMM rate inside training", gemm.flops / gemm.seconds / 1e9, "GFLOP/s")
        result.profile = profileLines(parts, seconds: seconds, steps: plans.count, parts: StepProfile.Part.allCases.filter { !$0.isSparse })
        record("share of the step outside the convolutions' arithmetic",
               result.profile.filter { !$0.isConvolutionArithmetic }.reduce(0) { $0 + $1.share }, "%")

        _ = try engine.evaluate(.test)  // warm-up
        StepProfile.start()
        let evalStart = Date(), evalCPUStart = processorSeconds()
        _ = try engine.evaluate(.test)
        let evalSeconds = Date().timeIntervalSince(evalStart), evalCPUSeconds = processorSeconds() - evalCPUStart
        let evalParts = StepProfile.stop()
        record("evaluation (batch assembly, forward, loss)", Double(splits.test.count) / evalSeconds, "images/s")
        record("evaluation per CPU-second of this process", Double(splits.test.count) / evalCPUSeconds, "images/s")
        result.evaluationProfile = profileLines(evalParts, seconds: evalSeconds, steps: (splits.test.count + batch - 1) / batch,
                                                parts: [.batchAssembly, .convolutionForward, .im2col, .batchNormForward, .poolAndClassifier, .loss])
        let memory = network.memoryUse
        let mebibyte = Double(1 << 20)
        record("memory: activations kept for backward", Double(memory.activations) / mebibyte, "MiB")
        record("memory: backward gradient buffers", Double(memory.gradients) / mebibyte, "MiB")
        record("memory: column-matrix chunk", Double(memory.columns) / mebibyte, "MiB")
        record("memory: parameters, gradients, momenta", Double(memory.parameters) / mebibyte, "MiB")
        record("peak resident memory", peakResidentMegabytes(), "MiB")
        record("BLAS threads", Double(BLAS.threads), "")
        record("element-wise threads", Double(Parallel.threads), "")
        return result
    }

    /// Random images of `side`² pixels with three channels: `images` to train on and
    /// `images` to evaluate.
    /// One line per part in `parts` (milliseconds per step of `steps` in `seconds`, and share),
    /// then what no part covers.
    private static func profileLines(_ times: [StepProfile.Part: Double], seconds: Double, steps: Int,
                                     parts: [StepProfile.Part]) -> [ProfileLine] {
        func line(_ name: String, arithmetic: Bool, _ time: Double) -> ProfileLine {
            ProfileLine(part: name, isConvolutionArithmetic: arithmetic, millisecondsPerStep: 1000 * time / Double(steps), share: 100 * time / seconds)
        }
        let measured = times.values.reduce(0, +)
        return parts.map { line($0.name, arithmetic: $0.isConvolutionArithmetic, times[$0, default: 0]) }
            + [line("other (unmeasured)", arithmetic: false, Swift.max(0, seconds - measured))]
    }

    static func syntheticSplits(images: Int, side: Int, channels: Int = 3) throws(ModelError) -> DataSplits {
        var random = RandomStream(seed: 1, stream: .synthetic)
        func dataset(_ name: String, count: Int) throws(ModelError) -> ImageDataset {
            let pixels = (0..<(count * channels * side * side)).map { _ in UInt8(truncatingIfNeeded: random.nextIndex(256)) }
            let labels = (0..<count).map { Int32($0 % 10) }
            return try ImageDataset(name: name, channels: channels, height: side, width: side, classes: 10, pixels: pixels, labels: labels,
                                     mean: [Float](repeating: 0.5, count: channels), std: [Float](repeating: 0.25, count: channels))
        }
        return try DataSplits(trainFiles: dataset("bench/train", count: images), test: try dataset("bench/test", count: images), validationSize: 0)
    }

    /// One epoch's batch plans over `dataset` with random crops and flips, as training draws them.
    static func syntheticPlans(_ dataset: ImageDataset, batchSize: Int) -> [BatchPlan] {
        var shuffle = RandomStream(seed: 2, stream: .shuffle)
        var augmentation: RandomStream? = RandomStream(seed: 2, stream: .augmentation)
        return Trainer.epochPlans(dataset, batchSize: batchSize, shuffle: &shuffle, augmentation: &augmentation)
    }

    /// The distinct convolution shapes of `network` at this batch and image size: each one's
    /// engine, input-gradient method and chunking.
    static func convolutionShapes(_ network: ResNet18, batch: Int, size: Int) -> [ConvolutionShape] {
        var shapes: [ConvolutionShape] = []
        for (conv, _, inputSide) in network.convolutionInputs(height: size, width: size) {
            let name = conv.weight.layerName
            let shape = "\(conv.inChannels)→\(conv.outChannels) \(conv.kernel)×\(conv.kernel) s\(conv.stride) \(inputSide)²"
            if let index = shapes.firstIndex(where: { $0.shape == shape }) {
                shapes[index].layers.append(name)
                continue
            }
            let area = conv.outputExtent(inputSide) * conv.outputExtent(inputSide)
            let rows = conv.inChannels * conv.kernel * conv.kernel
            let chunks = conv.chunks(batch: batch, rows: rows, area: area)
            let products = conv.gemmShapes(batch: batch, inputSide: inputSide, inputGradientNeeded: conv !== network.conv1)
            func engine(_ product: Conv2d.GEMMShape) -> String {
                BLAS.engine(for: BLAS.Kind(product.transposeA ? .transpose : .none, product.transposeB ? .transpose : .none)) == .oneDNN
                    ? "oneDNN" : "OpenBLAS"
            }
            let direct = conv.runsDirect(width: inputSide), directGradient = conv.runsDirectWeightGradient(width: inputSide)
            let level = conv.directLevel == 2 ? "AVX-512" : "AVX2"
            let roles = direct ? (directGradient ? [] : ["weight grad"]) : ["forward", "weight grad", "input grad"]
            var engines = zip(roles, products).map { "\($0) \(engine($1))" }
            var forwardGEMM = products.first.map { "\($0.m)×\($0.n)×\($0.k)" } ?? ""
            if direct {
                engines.insert("forward direct (\(level))", at: 0)
                if directGradient { engines.append("weight grad direct (\(level))") }
                if conv !== network.conv1 { engines.append("input grad direct (\(level))") }
                forwardGEMM = "direct"
            }
            shapes.append(ConvolutionShape(
                layers: [name], shape: shape, engine: engines.joined(separator: ", "),
                inputGradient: conv === network.conv1 ? "none (data)" : conv.inputGradientMethod(width: inputSide),
                chunks: chunks.count, imagesPerChunk: chunks.largest,
                columnMiB: !conv.buildsColumns ? 0 : Double(rows * chunks.largest * area * MemoryLayout<Float>.stride) / Double(1 << 20),
                forwardGEMM: forwardGEMM))
        }
        return shapes
    }

    /// GFLOP/s of one product shape on `engine` (default: the one routed for its kind),
    /// repeated for at least `minimumSeconds`.
    public static func gemmRate(m: Int, n: Int, k: Int, transA: BLAS.Transpose = .none, transB: BLAS.Transpose = .none,
                                engine: BLAS.Engine? = nil, minimumSeconds: Double = 0.25) -> Double {
        let a = Tensor(shape: [m * k], repeating: 0.5), b = Tensor(shape: [k * n], repeating: 0.25), c = Tensor(shape: [m * n])
        let lda = transA == .none ? k : m, ldb = transB == .none ? n : k
        let engine = engine ?? BLAS.engine(for: BLAS.Kind(transA, transB))
        func once() { BLAS.gemm(on: engine, transA, transB, m: m, n: n, k: k, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, c: c.pointer, ldc: n) }
        once()
        var repeats = 0
        let start = Date()
        repeat {
            once()
            repeats += 1
        } while Date().timeIntervalSince(start) < minimumSeconds
        return 2 * Double(m) * Double(n) * Double(k) * Double(repeats) / Date().timeIntervalSince(start) / 1e9
    }

    /// Time-weighted GFLOP/s of every GEMM one training step performs: each conv's forward,
    /// weight-gradient and input-gradient products at this batch size.
    static func networkShapeRate(_ network: ResNet18, batch: Int, size: Int) -> Double {
        var totalFlops = 0.0, totalSeconds = 0.0
        var rates: [Conv2d.GEMMShape: Double] = [:]
        for shape in network.gemmShapes(batch: batch, side: size) {
            let rate = rates[shape] ?? gemmRate(m: shape.m, n: shape.n, k: shape.k,
                                                transA: shape.transposeA ? .transpose : .none,
                                                transB: shape.transposeB ? .transpose : .none)
            rates[shape] = rate
            totalFlops += shape.stepFlops
            totalSeconds += shape.stepFlops / (rate * 1e9)
        }
        return totalFlops / totalSeconds / 1e9
    }

    /// User and system CPU time of the whole process so far, in seconds.
    static func processorSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// The process's peak resident set, in MiB.
    public static func peakResidentMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
