import ArgumentParser
import Foundation
import Model

/// `worker engines`: which library computes each kind of matrix product on this CPU, and why.
struct EnginesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engines",
        abstract: "Shows which engine, OpenBLAS or oneDNN, computes each kind of matrix product on this CPU, and the GFLOP/s behind the choice.",
        discussion: """
            Every worker on the CPU makes this choice when it starts: it times both engines on the network's \
            convolution shapes once per CPU model, BLAS core, oneDNN version and thread count, and keeps the \
            answer in its cache. --remeasure times them again (do it on an idle machine: the answer is kept). \
            PRUNESWEEP_GEMM_ENGINE=openblas or =onednn overrides the measurement.

              worker engines --threads 2
              worker engines --threads 8 --remeasure
            """)

    @Flag(help: "Ignore the cached measurement and time both engines again.") var remeasure = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.prepare(opensDevice: false, remeasureEngines: remeasure).lines.dropFirst().forEach(say)
    }
}
