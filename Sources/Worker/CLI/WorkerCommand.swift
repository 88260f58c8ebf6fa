import ArgumentParser
import Foundation
import Model

/// The `worker` program: joins a sweep (`worker --connect tcp://HOST:PORT`), or runs one
/// training or pruning step by hand.
@main
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Runs PruneSweep training and pruning steps on this machine.",
        subcommands: [ConnectCommand.self, TrainCommand.self, PruneCommand.self, RewindCommand.self, InitCommand.self,
                      BenchCommand.self, BLASProbeCommand.self],
        defaultSubcommand: ConnectCommand.self)
}

/// Options shared by every command that computes.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for the BLAS and element-wise loops (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    /// Applies the thread count and makes sure the fastest BLAS kernel runs (may re-execute
    /// the program); returns the line that says which.
    func prepare() throws -> String {
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        let line = BLASCoreSelection.ensureBestCore(threads: threads)
        BLAS.threads = threads
        Parallel.threads = threads
        return line
    }
}

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
