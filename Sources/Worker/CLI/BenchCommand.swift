import ArgumentParser
import Foundation
import Model

/// `worker bench`: BLAS and training throughput on the CPU, or training and evaluation
/// throughput on a GPU (`--device cuda`).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measures ResNet18 training and evaluation images/s and where the time goes (CPU: sgemm GFLOP/s; GPU: cuDNN/cuBLAS vs own kernels).")

    @Option(help: "Network width.") var width = 64
    @Option(help: "Images per step.") var batchSize = 128
    @Option(help: "Timed training steps (CPU default 3, GPU default 40).") var steps: Int?
    @Option(help: "GPU arithmetic: fp32 or tf32.") var precision: Precision = .tf32
    @Option(help: "CPU: column-matrix chunk budget of every convolution, in MiB (default: 2 for layers of ≤32 channels, 64 for wider ones).") var columnChunkMib: Double?
    @Option(help: "Also write the figures as JSON to this file.") var json: String?
    @Flag(help: "CPU: every convolution through im2col and GEMM, none direct (to compare).") var im2col = false
    @Option(help: "CPU: dense and sparse engines side by side on a SynFlow mask of this density, at widths 16 and 64.")
    var density: Double?
    @Option(help: "CPU: dense and sparse engines side by side on the masks of this weights, checkpoint or mask file.")
    var mask: String?
    @Option(help: "CPU, with --density or --mask: image side (default: 28 for a 1-channel mask, as Fashion-MNIST's; 32 otherwise).")
    var imageSize: Int?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        let (device, lines) = try compute.prepare(precision: precision)
        lines.forEach(say)
        func show(_ line: Benchmark.Line) {
            let value = line.value >= 100 ? String(format: "%.0f", line.value) : String(format: "%.3g", line.value)
            say("\(line.name.padding(toLength: 58, withPad: " ", startingAt: 0)) \(value) \(line.unit)")
        }
        let figures: [Benchmark.Line]
        var convolutions: [Benchmark.ConvolutionShape] = []
        var profile: [Benchmark.ProfileLine] = [], evaluationProfile: [Benchmark.ProfileLine] = []
        let deviceRecord: [String: String]
        var algorithms: [String: [String]]?, cudaGraphs: Bool?
        switch device {
        case .cpu where density != nil || mask != nil:
            say(BLAS.configuration)
            let results = try sparseComparison()
            if let json { try writeJSON(results, to: json) }
            return
        case .cpu:
            say(BLAS.configuration)
            let directLevel = im2col ? 0 : Conv2d.availableDirectLevel
            say("direct 3×3 convolutions: " + ["off (im2col and GEMM)", "AVX2", "AVX-512"][directLevel])
            var options = Benchmark.Options()
            options.width = width
            options.batchSize = batchSize
            options.steps = steps ?? 3
            options.directLevel = directLevel
            if let columnChunkMib { options.columnChunkElements = Int(columnChunkMib * Double(1 << 20)) / MemoryLayout<Float>.stride }
            let result = try failing { () throws(ModelError) in try Benchmark.run(options, progress: show, note: say) }
            figures = result.lines
            convolutions = result.convolutions
            profile = result.profile
            evaluationProfile = result.evaluationProfile
            showProfile(profile, title: "training step by part (ms per step, share of the step):")
            showProfile(evaluationProfile, title: "evaluation by part (ms per batch, share of the evaluation):")
            showConvolutions(convolutions)
            deviceRecord = ["name": "cpu", "blas": BLAS.coreName, "threads": String(BLAS.threads)]
        case .cuda(let gpu):
            var options = GPUBenchmark.Options()
            options.width = width
            options.batchSize = batchSize
            options.steps = steps ?? 40
            options.precision = precision
            let result = try failing { () throws(ModelError) in try GPUBenchmark.run(on: gpu, options, progress: show) }
            figures = result.lines
            algorithms = ["\(precision.rawValue)-\(batchSize)": result.algorithms]
            cudaGraphs = result.cudaGraphs
            deviceRecord = ["name": gpu.info.name, "summary": gpu.info.summary, "computeCapability": gpu.info.computeCapability,
                            "driver": gpu.info.driver, "cudnn": gpu.info.cudnn, "nvrtc": gpu.info.nvrtc, "precision": precision.rawValue,
                            "libraries": gpu.info.libraries.joined(separator: ", ")]
        }
        if let json {
            try writeJSON(BenchReport(device: deviceRecord, lines: figures, convolutions: convolutions, profile: profile, evaluationProfile: evaluationProfile, algorithms: algorithms, cudaGraphs: cudaGraphs), to: json)
        }
    }

    /// One row per kind of work: milliseconds per step (or batch) and share of the time.
    private func showProfile(_ lines: [Benchmark.ProfileLine], title: String) {
        say(title)
        for line in lines {
            say("  \(line.part.padding(toLength: 42, withPad: " ", startingAt: 0)) \(String(format: "%8.2f ms  %5.1f%%", line.millisecondsPerStep, line.share))")
        }
    }

    /// Dense and sparse side by side: at widths 16 and 64 on SynFlow masks, or at the width a
    /// mask file fits.
    private func sparseComparison() throws -> [SparseBenchmark.Result] {
        var runs: [(width: Int, channels: Int, masks: SparseBenchmark.Masks)] = []
        if let mask {
            let file = try failing { () throws(ModelError) in try Safetensors(contentsOf: URL(fileURLWithPath: mask)) }
            for candidate in [width, 16, 64] where !runs.contains(where: { $0.width == candidate }) {
                for channels in [3, 1] where (try? MaskSet(from: file, for: ResNet18(.init(width: candidate, inputChannels: channels, classes: 10)),
                                                         source: mask)) != nil {
                    runs.append((candidate, channels, .file(file, source: mask)))
                }
            }
            guard !runs.isEmpty else {
                FileHandle.standardError.write(Data("error: \(mask) holds no masks for a 3- or 1-channel, 10-class ResNet18 of width \(width), 16 or 64\n".utf8))
                throw ExitCode(2)
            }
        } else if let density {
            runs = [(16, 3, .synflow(density: density)), (64, 3, .synflow(density: density))]
        }
        var results: [SparseBenchmark.Result] = []
        for (width, channels, masks) in runs {
            var options = SparseBenchmark.Options()
            options.width = width
            options.inputChannels = channels
            options.imageSize = imageSize ?? (channels == 1 ? 28 : 32)
            options.batchSize = batchSize
            options.steps = steps ?? 2
            let result = try failing { () throws(ModelError) in try SparseBenchmark.run(options, masks: masks, log: say) }
            say("width \(width), \(channels)×\(options.imageSize)² images, density \(String(format: "%.4f", result.density)), batch \(batchSize), \(Parallel.threads) threads (medians of \(options.rounds) interleaved rounds):")
            say(String(format: "  training    dense %7.1f  sparse %7.1f images/s  %.2f×", result.denseTraining, result.sparseTraining, result.trainingSpeedUp))
            say(String(format: "  evaluation  dense %7.1f  sparse %7.1f images/s  %.2f×", result.denseEvaluation, result.sparseEvaluation, result.evaluationSpeedUp))
            var bound = String(format: "  the masks keep %.1f%% of the convolutions' multiply-adds: skipping the zeros makes them at most %.2f× faster",
                               100 * result.keptWork, result.workBound)
            if let chosen = result.choice.expectedSpeedUp { bound += String(format: "; the chosen paths' passes: %.2f×", chosen) }
            say(bound)
            for layer in result.choice.layers {
                var line = "  \(layer.layer.padding(toLength: 20, withPad: " ", startingAt: 0)) density \(String(format: "%.4f", layer.density))  \(layer.sparse ? "sparse" : "dense ")"
                if let dense = layer.denseSeconds, let sparse = layer.sparseSeconds {
                    line += String(format: "  pass dense %.1f ms, sparse %.1f ms (%.2f×)", 1000 * dense, 1000 * sparse, dense / sparse)
                }
                say(line)
            }
            say("  training step by part (ms per step, last round):")
            for line in result.profile {
                say(String(format: "    %@ dense %7.2f  sparse %7.2f", line.part.padding(toLength: 54, withPad: " ", startingAt: 0),
                           line.denseMilliseconds, line.sparseMilliseconds))
            }
            say(String(format: "  peak resident memory %.0f MiB", result.peakResidentMiB))
            results.append(result)
        }
        return results
    }

    /// One row per distinct convolution shape: how many layers have it, the forward GEMM per
    /// chunk, the chunking, the input-gradient method and the engine.
    private func showConvolutions(_ shapes: [Benchmark.ConvolutionShape]) {
        say("convolutions (shape, layers, forward GEMM per chunk M×N×K, chunks × images, column chunk, input gradient, engine):")
        for shape in shapes {
            let columns = shape.columnMiB > 0 ? String(format: "%.1f MiB", shape.columnMiB) : "none"
            say("  \(shape.shape.padding(toLength: 18, withPad: " ", startingAt: 0)) ×\(shape.layers.count)  "
                + "\(shape.forwardGEMM.padding(toLength: 16, withPad: " ", startingAt: 0)) \(shape.chunks) × \(shape.imagesPerChunk)  "
                + "\(columns.padding(toLength: 9, withPad: " ", startingAt: 0))  \(shape.inputGradient.padding(toLength: 15, withPad: " ", startingAt: 0))  \(shape.engine)")
        }
    }
}

/// The `--json` file of `worker bench`.
struct BenchReport: Encodable {
    var device: [String: String]
    var lines: [Benchmark.Line]
    /// The CPU benchmark's convolution shapes (empty on a GPU).
    var convolutions: [Benchmark.ConvolutionShape]
    /// The CPU training step's time by kind of work (empty on a GPU).
    var profile: [Benchmark.ProfileLine]
    /// The CPU evaluation's time by kind of work, per batch (empty on a GPU).
    var evaluationProfile: [Benchmark.ProfileLine]
    /// On a GPU: the cuDNN algorithms chosen, keyed "PRECISION-BATCH" (the GPU check compares
    /// them with the self-test's, chosen in another process), and whether steps ran as graphs.
    var algorithms: [String: [String]]?
    var cudaGraphs: Bool?
}

/// Writes `value` as pretty JSON to `path`, naming the path when that fails.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do {
        try encoder.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        FileHandle.standardError.write(Data("error: cannot write \(path): \(error.localizedDescription)\n".utf8))
        throw ExitCode(2)
    }
}

/// Hidden: measures the loaded BLAS core for `BLASCoreSelection` and prints "CORE GFLOPS".
struct BLASProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "blas-probe", shouldDisplay: false)

    func run() throws {
        guard let line = BLASCoreSelection.probeLine() else { throw ExitCode(1) }
        say(line)
    }
}
