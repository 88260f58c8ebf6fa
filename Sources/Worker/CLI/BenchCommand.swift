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
    @Option(help: "Also write the figures as JSON to this file.") var json: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        let (device, lines) = try compute.prepare(precision: precision)
        lines.forEach(say)
        func show(_ line: Benchmark.Line) {
            let value = line.value >= 100 ? String(format: "%.0f", line.value) : String(format: "%.3g", line.value)
            say("\(line.name.padding(toLength: 58, withPad: " ", startingAt: 0)) \(value) \(line.unit)")
        }
        let figures: [Benchmark.Line]
        let deviceRecord: [String: String]
        switch device {
        case .cpu:
            say(BLAS.configuration)
            var options = Benchmark.Options()
            options.width = width
            options.batchSize = batchSize
            options.steps = steps ?? 3
            figures = Benchmark.run(options, progress: show).lines
            deviceRecord = ["name": "cpu", "blas": BLAS.coreName, "threads": String(BLAS.threads)]
        case .cuda(let gpu):
            var options = GPUBenchmark.Options()
            options.width = width
            options.batchSize = batchSize
            options.steps = steps ?? 40
            options.precision = precision
            figures = try failing { () throws(ModelError) in try GPUBenchmark.run(on: gpu, options, progress: show) }
            deviceRecord = ["name": gpu.info.name, "summary": gpu.info.summary, "computeCapability": gpu.info.computeCapability,
                            "driver": gpu.info.driver, "cudnn": gpu.info.cudnn, "nvrtc": gpu.info.nvrtc, "precision": precision.rawValue]
        }
        if let json { try writeJSON(BenchReport(device: deviceRecord, lines: figures), to: json) }
    }
}

/// The `--json` file of `worker bench`.
struct BenchReport: Encodable {
    var device: [String: String]
    var lines: [Benchmark.Line]
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
        guard let rate = BLASCoreSelection.probe() else { throw ExitCode(1) }
        say("\(BLAS.coreName) \(rate)")
    }
}
