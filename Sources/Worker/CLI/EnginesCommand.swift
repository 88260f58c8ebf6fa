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
            convolution shapes once per CPU model, OpenBLAS build and core, oneDNN version and thread count, \
            repeating each timing until its two fastest agree within 10% (at most four rounds), and keeps the answer \
            in its cache, so that every process on the host routes alike; the line says how old the answer is, how \
            busy the machine was while it was measured, and whether the timings agreed. Each CPU training also \
            routes its own network's products, cached per width, batch and image size. \
            A CPU training whose own GEMM rate on a kind is more than 2× off the cached one drops the cache, so \
            the next start measures again. --remeasure times them now (best on an idle machine). \
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
