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
        /// Column-matrix chunk budget of every convolution, in floats.
        public var columnChunkElements = Conv2d.defaultColumnChunkElements

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
        /// The forward product per chunk, M×N×K.
        public var forwardGEMM: String
    }

    /// The figures, in the order they were measured.
    public private(set) var lines: [Line] = []
    /// Every distinct convolution shape of the network, in network order.
    public private(set) var convolutions: [ConvolutionShape] = []

    /// Runs every measurement; `progress` receives each line as it is measured.
    public static func run(_ options: Options, progress: (Line) -> Void) -> Benchmark {
        var result = Benchmark()
        func record(_ name: String, _ value: Double, _ unit: String) {
            let line = Line(name: name, value: value, unit: unit)
            result.lines.append(line)
            progress(line)
        }

        record("sgemm 2048×2048×2048", gemmRate(m: 2048, n: 2048, k: 2048), "GFLOP/s")
        let network = ResNet18(.init(width: options.width, inputChannels: 3, classes: 10))
        network.initialise(seed: 0)
        for conv in network.convolutions { conv.columnChunkElements = options.columnChunkElements }
        result.convolutions = convolutionShapes(network, batch: options.batchSize, size: options.imageSize)
        let shapeRate = networkShapeRate(network, batch: options.batchSize, size: options.imageSize)
        record("sgemm on the network's conv GEMM shapes (time-weighted)", shapeRate, "GFLOP/s")

        let batch = options.batchSize, size = options.imageSize
        var random = RandomStream(seed: 1, stream: .synthetic)
        let input = Tensor(shape: [batch, 3, size, size])
        for i in 0..<input.count { input[i] = random.nextSymmetric(1) }
        let labels = (0..<batch).map { Int32($0 % 10) }
        let space = Workspace()
        let x = FeatureMap.channelMajor(fromNCHW: input.pointer, batch: batch, channels: 3, height: size, width: size, into: space)
        let loss = CrossEntropy()
        let sgd = SGD()
        func trainStep(first: Bool) {
            let logits = network.forward(x, training: true)
            _ = labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) }
            network.backward(loss.backward(like: logits))
            sgd.step(network.parameters, learningRate: 0.01, firstStep: first)
        }
        trainStep(first: true)
        BLAS.resetUsage()
        let start = Date()
        for _ in 0..<options.steps { trainStep(first: false) }
        let seconds = Date().timeIntervalSince(start)
        let gemm = BLAS.usage.total
        let images = Double(options.steps * batch)
        let flopsPerImage = 6 * Double(network.multiplyAddsPerImage(height: size, width: size))
        let trainingRate = flopsPerImage * images / seconds / 1e9
        record("training (width \(options.width), batch \(batch))", images / seconds, "images/s")
        record("training effective (3 × 2 × MACs per image)", trainingRate, "GFLOP/s")
        record("training / BLAS on the network's shapes", trainingRate / shapeRate, "ratio")
        record("time inside GEMM", 100 * gemm.seconds / seconds, "%")
        record("GEMM rate inside training", gemm.flops / gemm.seconds / 1e9, "GFLOP/s")

        _ = network.forward(x, training: false)
        let evalStart = Date()
        for _ in 0..<options.steps { _ = network.forward(x, training: false) }
        record("evaluation", images / Date().timeIntervalSince(evalStart), "images/s")
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

    /// The distinct convolution shapes of `network` at this batch and image size: each one's
    /// engine, input-gradient method and chunking.
    static func convolutionShapes(_ network: ResNet18, batch: Int, size: Int) -> [ConvolutionShape] {
        var shapes: [ConvolutionShape] = []
        var sides: [(Conv2d, Int)] = [(network.conv1, size)]
        var side = size
        for block in network.blocks {
            sides.append((block.conv1, side))
            if let shortcut = block.shortcut { sides.append((shortcut.conv, side)) }
            side = block.conv1.outputExtent(side)
            sides.append((block.conv2, side))
        }
        for (conv, inputSide) in sides {
            let name = String(conv.weight.name.dropLast(".weight".count))
            let shape = "\(conv.inChannels)→\(conv.outChannels) \(conv.kernel)×\(conv.kernel) s\(conv.stride) \(inputSide)²"
            if let index = shapes.firstIndex(where: { $0.shape == shape }) {
                shapes[index].layers.append(name)
                continue
            }
            let area = conv.outputExtent(inputSide) * conv.outputExtent(inputSide)
            let rows = conv.inChannels * conv.kernel * conv.kernel
            let chunks = conv.chunks(batch: batch, rows: rows, area: area)
            let products = conv.gemmShapes(batch: batch, inputSide: inputSide, inputGradientNeeded: conv !== network.conv1)
            let forward = products[0]
            let engines = zip(["forward", "weight grad", "input grad"], products).map { role, product in
                let kind = BLAS.Kind(product.transposeA ? .transpose : .none, product.transposeB ? .transpose : .none)
                return "\(role) \(BLAS.engine(for: kind) == .oneDNN ? "oneDNN" : "OpenBLAS")"
            }
            shapes.append(ConvolutionShape(
                layers: [name], shape: shape, engine: engines.joined(separator: ", "),
                inputGradient: conv === network.conv1 ? "none (data)" : conv.inputGradientMethod,
                chunks: chunks.count, imagesPerChunk: chunks.largest,
                columnMiB: !conv.buildsColumns ? 0 : Double(rows * chunks.largest * area * MemoryLayout<Float>.stride) / Double(1 << 20),
                forwardGEMM: "\(forward.m)×\(forward.n)×\(forward.k)"))
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
        var shapes = network.conv1.gemmShapes(batch: batch, inputSide: size, inputGradientNeeded: false)
        var side = size
        for block in network.blocks {
            shapes += block.conv1.gemmShapes(batch: batch, inputSide: side)
            shapes += block.shortcut?.conv.gemmShapes(batch: batch, inputSide: side) ?? []
            side = block.conv1.outputExtent(side)
            shapes += block.conv2.gemmShapes(batch: batch, inputSide: side)
        }
        for shape in shapes {
            let rate = rates[shape] ?? gemmRate(m: shape.m, n: shape.n, k: shape.k,
                                                transA: shape.transposeA ? .transpose : .none,
                                                transB: shape.transposeB ? .transpose : .none)
            rates[shape] = rate
            let flops = 2 * Double(shape.m) * Double(shape.n) * Double(shape.k)
            totalFlops += flops
            totalSeconds += flops / (rate * 1e9)
        }
        return totalFlops / totalSeconds / 1e9
    }

    /// The process's peak resident set, in MiB.
    public static func peakResidentMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
