import ArgumentParser
import Foundation
import Model

/// `worker prune`: the prune step from the command line.
struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Computes a pruning mask: lottery-ticket or han from trained weights; synflow, random, magnitude-at-init or snip at initialisation.",
        discussion: """
            Writes a safetensors file of mask.NAME tensors (PyTorch names) with density and sparsity in its \
            metadata, and prints the report as JSON. Without --weights, the weights are the initialisation \
            of --seed (θ0), as for pruning at initialisation.

              worker prune --method synflow --iterations 100 --density 0.05 --width 16 --dataset fashion-mnist --out mask.safetensors
              worker prune --method lottery-ticket --weights runs/dense/weights.safetensors --out round1.safetensors
            """)

    @Option(help: "lottery-ticket, han, synflow, random, magnitude-at-init or snip.") var method: String
    @Option(help: "Fraction of prunable weights to keep (at-init methods).") var density: Double?
    @Option(help: "SynFlow rounds (1–1000).") var iterations = 100
    @Option(help: "SynFlow schedule: exponential or linear.") var schedule = "exponential"
    @Option(help: "global or local (at-init methods); layerwise or global (lottery-ticket).") var scope: String?
    @Option(help: "Lottery Ticket: fraction of survivors removed per round.") var rate = 0.2
    @Flag(help: "Lottery Ticket: leave linear.weight dense.") var keepClassifier = false
    @Option(help: "Han: threshold = quality × std.") var quality = 1.0
    @Option(help: "SNIP: images per class in the scoring batch.") var examplesPerClass = 10
    @Option(help: "Weights to prune (safetensors, PyTorch names).") var weights: String?
    @Option(help: "The current mask (safetensors), for iterative methods.") var mask: String?
    @Option(help: "cifar10, fashion-mnist or synthetic: sets input channels and size (and SNIP's images).")
    var dataset: TrainingConfig.Dataset = .fashionMNIST
    @Option(help: "Dataset directory.") var dataDir: String?
    @Option(help: "Network width.") var width = 64
    @Option(help: "Seed (θ0 without --weights; random choices).") var seed: UInt64 = 0
    @Option(help: "Where to write the mask.") var out: String
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        // Pruning scores on the CPU (SynFlow in float64) whatever --device says.
        try compute.prepare(opensDevice: false).lines.forEach(say)
        let pruning = try pruningMethod()
        try failing { () throws(ModelError) in
            try pruning.validate()
            let shape = TrainingConfig(dataset: dataset, synthetic: .init(trainCount: 512, testCount: 64, side: 16)).inputShape
            let architecture = ResNet18.Architecture(width: width, inputChannels: shape.channels, classes: 10)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prunesweep-\(getpid())")
            try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            var source = weights.map { URL(fileURLWithPath: $0) }
            if source == nil {
                let theta0 = directory.appendingPathComponent("theta0.safetensors")
                try Steps.initialWeights(architecture: architecture, seed: seed, output: theta0)
                source = theta0
            }
            let data = pruning.needsData
                ? try TrainingConfig(dataset: dataset, synthetic: .init(trainCount: 512, testCount: 64, side: 16))
                    .loadData(from: dataDir.map { URL(fileURLWithPath: $0) }).train
                : nil
            let report = try Steps.prune(method: pruning, architecture: architecture, inputSide: shape.side,
                                         weights: source!, oldMask: mask.map { URL(fileURLWithPath: $0) }, data: data,
                                         seed: seed, output: URL(fileURLWithPath: out), log: say)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            say(String(decoding: (try? encoder.encode(report)) ?? Data(), as: UTF8.self))
            say("mask: \(report.remaining) of \(report.prunable) prunable weights kept (density \(String(format: "%.4f", report.density)), sparsity \(String(format: "%.4f", report.sparsity))) in \(out)")
        }
    }

    private func pruningMethod() throws -> PruningMethod {
        func needDensity() throws -> Double {
            guard let density else { throw ValidationError("--method \(method) needs --density (the fraction of weights kept, e.g. 0.05)") }
            return density
        }
        let global: Bool
        switch scope ?? "global" {
        case "global": global = true
        case "local", "layerwise": global = false
        default: throw ValidationError("--scope must be global, local or layerwise, got \(scope ?? "")")
        }
        switch method {
        case "lottery-ticket":
            return .lotteryTicket(rate: rate, scope: (scope ?? "layerwise") == "global" ? .global : .layerwise, pruneClassifier: !keepClassifier)
        case "han": return .han(quality: quality)
        case "synflow":
            guard let schedule = SynFlow.Schedule(rawValue: schedule) else { throw ValidationError("--schedule must be exponential or linear") }
            return .synflow(density: try needDensity(), iterations: iterations, schedule: schedule, global: global)
        case "random": return .random(density: try needDensity(), global: global)
        case "magnitude-at-init": return .magnitudeAtInit(density: try needDensity(), global: global)
        case "snip": return .snip(density: try needDensity(), examplesPerClass: examplesPerClass, global: global)
        default: throw ValidationError("--method must be lottery-ticket, han, synflow, random, magnitude-at-init or snip, got \(method)")
        }
    }
}

/// `worker rewind`: the rewind step (θ0 or θK with a mask applied at once).
struct RewindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rewind", abstract: "Writes the weights of --source with --mask applied (the Lottery Ticket rewind).")

    @Option(help: "Weights to rewind to (θ0, or θK for late rewinding).") var source: String
    @Option(help: "The mask to apply.") var mask: String
    @Option(help: "Input channels of the network (3 CIFAR, 1 Fashion-MNIST).") var inputChannels = 3
    @Option(help: "Network width.") var width = 64
    @Option(help: "Where to write the weights.") var out: String

    func run() throws {
        try failing { () throws(ModelError) in
            try Steps.rewind(architecture: .init(width: width, inputChannels: inputChannels, classes: 10),
                             source: URL(fileURLWithPath: source), mask: URL(fileURLWithPath: mask), output: URL(fileURLWithPath: out))
            say("rewound \(source) with \(mask) into \(out)")
        }
    }
}

/// `worker init`: θ0 of a seed as a weights file.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Writes the initial weights (θ0) of a seed.")

    @Option(help: "Input channels (3 CIFAR, 1 Fashion-MNIST).") var inputChannels = 3
    @Option(help: "Network width.") var width = 64
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Where to write the weights.") var out: String

    func run() throws {
        try failing { () throws(ModelError) in
            try Steps.initialWeights(architecture: .init(width: width, inputChannels: inputChannels, classes: 10), seed: seed,
                                     output: URL(fileURLWithPath: out))
            say("θ0 of seed \(seed) in \(out)")
        }
    }
}
