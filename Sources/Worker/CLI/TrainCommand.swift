import ArgumentParser
import Foundation
import Model

/// `worker train`: one local training run with a progress line per epoch, resumable.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Trains ResNet18 once on this machine; rerun the same command to resume an interrupted run.")

    @Option(help: "cifar10, fashion-mnist or synthetic.")
    var dataset: TrainingConfig.Dataset = .fashionMNIST
    @Option(help: "Directory with the dataset files (default for fashion-mnist: \(FashionMNIST.defaultDirectory.path)).")
    var dataDir: String?
    @Option(help: "Network width (64 = the paper).") var width = 64
    @Option(help: "Training epochs.") var epochs = 200
    @Option(help: "Images per step.") var batchSize = 128
    @Option(name: .customLong("lr"), help: "Base learning rate.") var learningRate = 0.1
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Option(help: "Coupled L2 weight decay.") var weightDecay: Float = 5e-4
    @Flag(help: "Nesterov momentum.") var nesterov = false
    @Option(help: "multistep (per epoch), cosine (per step, to 0) or constant.") var schedule = "multistep"
    @Option(help: "MultiStepLR milestones (epochs, comma-separated).") var milestones = "60,120,160"
    @Option(help: "MultiStepLR factor.") var gamma = 0.2
    @Flag(help: "Turn off random crop and flip.") var noAugment = false
    @Option(help: "Training images held out for validation (fixed split seed 42).") var validationSize = 5000
    @Option(help: "Train on only this many images.") var trainLimit: Int?
    @Option(help: "Test on only this many images.") var testLimit: Int?
    @Option(help: "Run seed (initialisation, order, augmentation).") var seed: UInt64 = 0
    @Option(help: "Start from these weights (safetensors, PyTorch names; default: the seed's initialisation).") var initial: String?
    @Option(help: "Train under this mask (safetensors of mask.NAME tensors).") var mask: String?
    @Option(help: "Epochs already behind --initial (late rewinding to θK): start at epoch K+1 with the schedule and data order fast-forwarded.")
    var startEpoch = 0
    @Option(help: "Keep the weights after these epochs as epoch-K.safetensors (comma-separated), for late rewinding.")
    var saveEpochs = ""
    @Option(help: "Run directory for checkpoints, weights and metrics.json.") var out = "runs/train"
    @Option(help: "GPU arithmetic: fp32 or tf32 (default tf32 on a GPU; the CPU always computes in fp32).") var precision: Precision?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        let (device, lines) = try compute.prepare(precision: precision)
        lines.forEach(say)
        let learningRateSchedule: LearningRateSchedule
        switch schedule {
        case "multistep":
            let epochs = milestones.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard epochs.count == milestones.split(separator: ",").count else {
                throw ValidationError("--milestones must be comma-separated epochs, got \(milestones)")
            }
            learningRateSchedule = .multiStep(milestones: epochs, gamma: gamma)
        case "cosine": learningRateSchedule = .cosine
        case "constant": learningRateSchedule = .constant
        default: throw ValidationError("--schedule must be multistep, cosine or constant, got \(schedule)")
        }
        let config = TrainingConfig(
            dataset: dataset, width: width, epochs: epochs, batchSize: batchSize, learningRate: learningRate,
            schedule: learningRateSchedule, optimizer: SGD(momentum: momentum, weightDecay: weightDecay, nesterov: nesterov),
            augment: !noAugment, validationSize: validationSize, trainLimit: trainLimit, testLimit: testLimit,
            synthetic: dataset == .synthetic ? .init(trainCount: 2048, testCount: 512, side: 16) : nil, seed: seed, startEpoch: startEpoch,
            precision: precision)
        let snapshots = Set(saveEpochs.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) })
        let directory = URL(fileURLWithPath: out)
        try failing { () throws(ModelError) in
            try config.validate()
            let data = try config.loadData(from: dataDir.map { URL(fileURLWithPath: $0) })
            say("data: \(data.train.count) training, \(data.validation.count) validation, \(data.test.count) test images of \(data.train.channels)×\(data.train.height)×\(data.train.width) (\(dataset.rawValue))")
            let initialState = try initial.map { path throws(ModelError) in try Safetensors(contentsOf: URL(fileURLWithPath: path)) }
            var masks: [String: Tensor] = [:]
            if let mask {
                let probe = ResNet18(.init(width: width, inputChannels: data.train.channels, classes: data.train.classes))
                let set = try MaskSet(from: try Safetensors(contentsOf: URL(fileURLWithPath: mask)), for: probe, source: mask)
                masks = set.tensors
                say("mask \(mask): density \(String(format: "%.4f", set.density)) (\(set.kept) of \(set.total) prunable weights)")
            }
            let trainer = try Trainer(config: config, data: data, directory: directory, initialState: initialState, masks: masks,
                                      snapshotEpochs: snapshots, device: device, log: say)
            say("run \(config.identity.prefix(12)) in \(directory.path): width \(width), \(trainer.network.parameterCount) parameters, batch \(batchSize), \(epochs) epochs")
            try trainer.run()
            let final = trainer.history.last?.testAccuracy ?? 0
            say("done: test accuracy \(String(format: "%.2f%%", 100 * final)); metrics in \(directory.appendingPathComponent("metrics.json").path)")
        }
    }
}

extension TrainingConfig.Dataset: ExpressibleByArgument {}
