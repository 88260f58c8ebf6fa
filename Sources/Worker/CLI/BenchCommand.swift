import ArgumentParser
import Foundation
import Model

/// `worker bench`: BLAS and training throughput on this machine.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measures sgemm GFLOP/s, ResNet18 training and evaluation images/s, and where the time goes.")

    @Option(help: "Network width.") var width = 64
    @Option(help: "Images per step.") var batchSize = 128
    @Option(help: "Timed training steps after one warm-up step.") var steps = 3
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        say(try compute.prepare())
        say(BLAS.configuration)
        var options = Benchmark.Options()
        options.width = width
        options.batchSize = batchSize
        options.steps = steps
        _ = Benchmark.run(options) { line in
            let value = line.value >= 100 ? String(format: "%.0f", line.value) : String(format: "%.3g", line.value)
            say("\(line.name.padding(toLength: 58, withPad: " ", startingAt: 0)) \(value) \(line.unit)")
        }
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
