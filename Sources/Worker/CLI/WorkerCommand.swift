import ArgumentParser
import BuildStamp
import Foundation
import Model
import TaskRuntime

/// The `worker` program: joins a sweep (`worker --connect tcp://HOST:PORT`), or runs one
/// training or pruning step by hand.
@main
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Runs PruneSweep training and pruning steps on this machine.",
        version: "commit \(BuildInfo.current)",
        subcommands: [ConnectCommand.self, TrainCommand.self, PruneCommand.self, RewindCommand.self, InitCommand.self,
                      BenchCommand.self, SelfTestCommand.self, EnginesCommand.self, BLASProbeCommand.self],
        defaultSubcommand: ConnectCommand.self)

    /// SIGTERM and SIGINT end the worker whatever its parent blocked (`StopSignals`).
    static func main() {
        StopSignals.restore()
        main(nil)
    }
}

/// Options shared by every command that computes.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for the BLAS and element-wise loops (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Where training runs: auto (a GPU when a driver and a device are present), cpu, cuda or cuda:N.")
    var device = "auto"

    func validate() throws {
        guard ComputeDevice.Request(device) != nil else { throw ValidationError("--device must be auto, cpu, cuda or cuda:N, got \(device)") }
    }

    /// Opens the device (an explicit CUDA request that cannot be met ends the program with one
    /// line naming what is missing, before anything is written), applies the thread count and
    /// makes sure the fastest BLAS kernel runs (may re-execute the program) and, on the CPU,
    /// routes each kind of product to the faster of OpenBLAS and oneDNN. The first line names
    /// the device and why it was chosen.
    func prepare(precision: Precision? = nil, opensDevice: Bool = true, remeasureEngines: Bool = false) throws -> (device: ComputeDevice, lines: [String]) {
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        let request = opensDevice ? ComputeDevice.Request(device) ?? .auto : .cpu
        let opened: (device: ComputeDevice, reason: String)
        do {
            opened = try ComputeDevice.open(request)
        } catch {
            FileHandle.standardError.write(Data("error: --device \(request): \(error)\n".utf8))
            throw ExitCode(2)
        }
        let line = BLASCoreSelection.ensureBestCore(threads: threads)
        BLAS.threads = threads
        Parallel.threads = threads
        var lines = [Self.describe(opened.device, reason: opened.reason, precision: precision), line]
        // Where cuDNN, cuBLAS and NVRTC came from: the system, a wheel or torch/lib.
        if case .cuda(let gpu) = opened.device { lines.insert("CUDA libraries: \(gpu.info.libraries.joined(separator: ", "))", at: 1) }
        // A GPU trains on cuBLAS and cuDNN; measuring the CPU's engines would only delay the start.
        if case .cpu = opened.device { lines.append(GEMMEngineSelection.choose(threads: threads, remeasure: remeasureEngines)) }
        return (opened.device, lines)
    }

    /// "device: cuda:0 NVIDIA H200 (sm_90, …), driver 13.0, cuDNN 9.14.0, NVRTC 13.0, precision tf32 (asked for)".
    static func describe(_ device: ComputeDevice, reason: String, precision: Precision?) -> String {
        switch device {
        case .cpu:
            return "device: cpu, precision fp32 (\(reason))"
        case .cuda(let gpu):
            let chosen = precision.map { "precision \($0.rawValue)" } ?? "precision tf32 unless the experiment asks for fp32"
            return "device: \(gpu.info.summary), \(chosen) (\(reason))"
        }
    }
}

extension Precision: ExpressibleByArgument {}

/// Prints a `ModelError` as one line and exits non-zero, instead of a stack of types.
func failing<T>(_ body: () throws(ModelError) -> T) throws -> T {
    do { return try body() } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(2)
    }
}

/// Writes one line to standard output at once: progress must reach a log file or pipe as it
/// happens, and `print` is block-buffered when stdout is not a terminal.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
