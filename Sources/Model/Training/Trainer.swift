import Foundation

/// Runs one training configuration to the end, writing a checkpoint after every epoch, and
/// resumes from the run directory's checkpoint when there is one.
///
/// Files in the run directory: `checkpoint.safetensors` (the latest epoch's full state),
/// `best.safetensors` (weights of the best validation epoch, when there is a validation
/// split), `weights.safetensors` (final weights and masks) and `metrics.json`.
public final class Trainer {
    /// The run's configuration.
    public let config: TrainingConfig
    /// The network being trained.
    public let network: ResNet18
    /// The images.
    public let data: DataSplits
    /// Where checkpoints and results go.
    public let directory: URL
    /// What runs the steps: the CPU or a GPU.
    public let engine: TrainingEngine
    private let log: (String) -> Void
    private let snapshotEpochs: Set<Int>
    private var progress: TrainingProgress
    /// The sparse engine's per-layer choice (nil: no mask, or not on the CPU).
    public private(set) var sparseChoice: SparseChoice?
    /// The run's identity: the configuration's hash, folded with the hashes of the initial
    /// weights and masks when the run starts from given ones.
    public let identity: String

    /// The path of the latest checkpoint.
    public var checkpointURL: URL { directory.appendingPathComponent("checkpoint.safetensors") }

    /// Prepares a run. `snapshotEpochs` lists epochs after which the weights are kept as
    /// `epoch-K.safetensors` (θK, for late rewinding). Starts from `initialState` (weights and BN buffers, PyTorch names) when
    /// given, else from the seed's initialisation; applies `masks` (by parameter name). If the
    /// directory holds a checkpoint of the same configuration the run resumes from it — whichever
    /// device wrote it; one of another configuration is an error rather than being overwritten.
    /// `device` runs the steps (the CPU unless a GPU is given).
    public init(config: TrainingConfig, data: DataSplits, directory: URL, initialState: Safetensors? = nil,
                masks: [String: Tensor] = [:], snapshotEpochs: Set<Int> = [], device: ComputeDevice = .cpu,
                log: @escaping (String) -> Void = { print($0) }) throws(ModelError) {
        self.snapshotEpochs = snapshotEpochs
        try config.validate()
        self.config = config
        self.data = data
        self.directory = directory
        self.log = log
        network = ResNet18(.init(width: config.width, inputChannels: data.train.channels, classes: data.train.classes))
        engine = try device.makeEngine(network: network, data: data, config: config)
        if initialState == nil && masks.isEmpty {
            identity = config.identity
        } else {
            var maskFile = Safetensors()
            for (name, mask) in masks.sorted(by: { $0.key < $1.key }) { maskFile.add(name, mask) }
            identity = Steps.identity(step: "train", spec: config, inputs: [initialState?.contentDigest ?? "", maskFile.contentDigest])
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw .io("cannot create run directory \(directory.path): \(error.localizedDescription)")
        }
        progress = TrainingProgress(
            configIdentity: identity, completedEpochs: 0, optimizerSteps: 0, momentumInitialized: false,
            shuffleState: TrainingProgress.hex(RandomStream(seed: config.seed, stream: .shuffle)),
            augmentationState: TrainingProgress.hex(RandomStream(seed: config.seed, stream: .augmentation)),
            history: [])
        let resumed = FileManager.default.fileExists(atPath: checkpointURL.path)
        if resumed {
            let saved = try Checkpoint.load(checkpointURL, into: network)
            guard saved.configIdentity == identity else {
                throw .invalidConfiguration("\(checkpointURL.path) belongs to another run (\(saved.configIdentity.prefix(12))…, this one is \(identity.prefix(12))…: another configuration, initial weights or mask); use a fresh --out directory or delete it")
            }
            progress = saved
            log("resuming \(directory.lastPathComponent) after epoch \(saved.completedEpochs) of \(config.epochs)")
        } else {
            if let initialState {
                try network.loadState(from: initialState, source: "initial state")
            } else {
                network.initialise(seed: config.seed)
            }
            for parameter in network.parameters {
                try parameter.setMask(masks[parameter.name])
                parameter.momentum.fill(0)
            }
            if config.startEpoch > 0 { try fastForward(to: config.startEpoch) }
        }
        try engine.synchronizeDevice()
        if engine is CPUEngine {
            if let line = GEMMEngineSelection.choose(for: network, batch: config.batchSize, side: data.train.height, threads: BLAS.threads) {
                log(line)
            }
            // A run resumed from a checkpoint without budgets started with the default ones.
            let chunks = try ColumnChunkSelection.install(on: network, batch: config.batchSize, height: data.train.height,
                                                          width: data.train.width, fixed: resumed ? progress.columnChunks ?? [:] : nil)
            if let line = chunks.line { log(line) }
            progress.columnChunks = chunks.budgets.isEmpty ? nil : chunks.budgets
            let evaluation = try EvaluationRouteSelection.install(on: network, batch: config.batchSize, height: data.train.height,
                                                                  width: data.train.width,
                                                                  fixed: resumed ? progress.evaluationDirectLayers ?? [] : nil)
            if let line = evaluation.line { log(line) }
            progress.evaluationDirectLayers = evaluation.directLayers.isEmpty ? nil : evaluation.directLayers
            sparseChoice = try SparseSelection.install(on: network, batchSize: config.batchSize, height: data.train.height,
                                                       width: data.train.width, mode: try SparseSelection.Mode.fromEnvironment(),
                                                       fixed: progress.sparseLayers)
            if let sparseChoice { log(sparseChoice.summary) }
            progress.sparseLayers = sparseChoice?.sparseLayers
        }
    }

    /// Moves the schedule's clock and the shuffling and augmentation streams to where an
    /// uninterrupted run stands after `epochs` epochs, drawing (and discarding) exactly what
    /// those epochs would have drawn. The optimiser stays fresh.
    private func fastForward(to epochs: Int) throws(ModelError) {
        // Must draw exactly what `epochPlans` draws per epoch.
        var shuffle = try TrainingProgress.stream(progress.shuffleState)
        var augmentation = try TrainingProgress.stream(progress.augmentationState)
        let padding = BatchPlan.cropPadding(forSide: Swift.min(data.train.height, data.train.width))
        for _ in 0..<epochs {
            _ = shuffle.permutation(data.train.count)
            if config.augment {
                for _ in 0..<data.train.count { _ = BatchPlan.drawCrop(padding: padding, random: &augmentation) }
            }
        }
        progress.shuffleState = TrainingProgress.hex(shuffle)
        progress.augmentationState = TrainingProgress.hex(augmentation)
        progress.completedEpochs = epochs
        progress.optimizerSteps = epochs * stepsPerEpoch
        log("starting at epoch \(epochs + 1) of \(config.epochs) (rewind point; schedule and data order fast-forwarded, fresh optimiser)")
    }

    /// Whether every epoch is done.
    public var isFinished: Bool { progress.completedEpochs >= config.lastEpoch }
    /// Every finished epoch's metrics.
    public var history: [EpochMetrics] { progress.history }

    /// Trains until `stopAfterEpoch` (default: the last epoch), checkpointing each epoch, and
    /// writes the final files when the run is complete.
    public func run(stopAfterEpoch: Int? = nil) throws(ModelError) {
        let lastEpoch = Swift.min(stopAfterEpoch ?? config.lastEpoch, config.lastEpoch)
        while progress.completedEpochs < lastEpoch {
            let metrics = try trainEpoch()
            log(Self.describe(metrics, of: config.epochs))
        }
        if isFinished { try writeResults() }
    }

    private var stepsPerEpoch: Int { (data.train.count + config.batchSize - 1) / config.batchSize }

    private func trainEpoch() throws(ModelError) -> EpochMetrics {
        let epoch = progress.completedEpochs + 1
        let start = Date()
        var shuffle = try TrainingProgress.stream(progress.shuffleState)
        var augmentation: RandomStream? = config.augment ? try TrainingProgress.stream(progress.augmentationState) : nil
        let plans = Self.epochPlans(data.train, batchSize: config.batchSize, shuffle: &shuffle, augmentation: &augmentation)
        let totalSteps = stepsPerEpoch * config.epochs
        let rates = plans.indices.map { Float(config.schedule.rate(base: config.learningRate, epoch: epoch, step: progress.optimizerSteps + $0, totalSteps: totalSteps)) }
        let firstRate = config.schedule.rate(base: config.learningRate, epoch: epoch, step: progress.optimizerSteps, totalSteps: totalSteps)
        let gemmBefore = BLAS.usage
        let (lossSum, correct) = try engine.trainEpoch(plans, learningRates: rates, momentumInitialized: progress.momentumInitialized)
        if engine is CPUEngine, let warning = GEMMEngineSelection.review(BLAS.usage.since(gemmBefore)) { log(warning) }
        progress.optimizerSteps += plans.count
        progress.momentumInitialized = true
        let trainSeconds = Date().timeIntervalSince(start)
        let validation = data.validation.count > 0 ? try evaluate(.validation).accuracy : nil
        let test = try evaluate(.test)
        let count = data.train.count
        let metrics = EpochMetrics(
            epoch: epoch, trainLoss: lossSum / Double(count), trainAccuracy: Double(correct) / Double(count),
            validationAccuracy: validation, testAccuracy: test.accuracy, testLoss: test.loss, learningRate: firstRate,
            seconds: Date().timeIntervalSince(start), imagesPerSecond: Double(count) / trainSeconds)
        progress.completedEpochs = epoch
        progress.shuffleState = TrainingProgress.hex(shuffle)
        if let augmentation { progress.augmentationState = TrainingProgress.hex(augmentation) }
        progress.history.append(metrics)
        try engine.synchronizeHost()
        if let validation, validation > (progress.bestValidationAccuracy ?? -1) {
            progress.bestValidationAccuracy = validation
            progress.bestEpoch = epoch
            try saveWeights(to: directory.appendingPathComponent("best.safetensors"), extra: ["epoch": String(epoch)])
        }
        if snapshotEpochs.contains(epoch) {
            try saveWeights(to: directory.appendingPathComponent("epoch-\(epoch).safetensors"), extra: ["epoch": String(epoch)])
        }
        try Checkpoint.save(network, progress: progress, config: config, to: checkpointURL)
        return metrics
    }

    /// The batches of one epoch: a fresh permutation from `shuffle`, cut into batches, each
    /// image's crop and flip drawn from `augmentation` when augmenting. Both devices train on
    /// these plans, so they see the same images in the same order.
    public static func epochPlans(_ dataset: ImageDataset, batchSize: Int, shuffle: inout RandomStream,
                                  augmentation: inout RandomStream?) -> [BatchPlan] {
        let order = shuffle.permutation(dataset.count)
        return stride(from: 0, to: order.count, by: batchSize).map { first in
            BatchPlan(dataset, indices: order[first..<Swift.min(first + batchSize, order.count)], random: &augmentation)
        }
    }

    /// Mean loss and top-1 accuracy over a held-out split in evaluation mode.
    public func evaluate(_ split: EvaluationSplit) throws(ModelError) -> (loss: Double, accuracy: Double) {
        let count = Double(Swift.max(split == .test ? data.test.count : data.validation.count, 1))
        let totals = try engine.evaluate(split)
        return (totals.lossSum / count, Double(totals.correct) / count)
    }

    private func saveWeights(to url: URL, extra: [String: String] = [:]) throws(ModelError) {
        var file = Safetensors(metadata: extra.merging(["config": String(decoding: config.canonicalJSON, as: UTF8.self)]) { $1 })
        for (name, tensor) in network.state { file.addView(name, tensor) }
        for parameter in network.parameters { if let mask = parameter.mask { file.addView("mask." + parameter.name, mask) } }
        try file.write(to: url)
    }

    private func writeResults() throws(ModelError) {
        try saveWeights(to: directory.appendingPathComponent("weights.safetensors"))
        let bestTest = bestCheckpointTestAccuracy()
        let summary = RunSummary(config: config, identity: identity, history: progress.history,
                                 bestValidationAccuracy: progress.bestValidationAccuracy, bestEpoch: progress.bestEpoch,
                                 bestValidationTestAccuracy: bestTest,
                                 finalTestAccuracy: progress.history.last?.testAccuracy ?? 0,
                                 parameters: network.parameterCount,
                                 prunable: network.prunableParameters.reduce(0) { $0 + $1.value.count },
                                 remaining: network.prunableParameters.reduce(0) { $0 + $1.keptCount },
                                 blasCore: BLAS.engineSummary, threads: BLAS.threads,
                                 device: engine.deviceName, precision: engine.precisionName, cudaGraphs: engine.usedCUDAGraphs,
                                 sparse: sparseChoice, columnChunks: progress.columnChunks,
                                 evaluationDirectLayers: progress.evaluationDirectLayers)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try Safetensors.writeAtomically(try encoder.encode(summary), to: directory.appendingPathComponent("metrics.json"))
        } catch let error as ModelError {
            throw error
        } catch {
            throw .io("cannot encode metrics for \(directory.path): \(error)")
        }
    }

    /// Test accuracy of the best-validation weights (the dense baseline's reported figure): the
    /// test accuracy of the best epoch, measured on exactly the weights `best.safetensors` holds.
    /// Read from the history, not from that file, so a run resumed in a fresh directory (a
    /// worker's next attempt) still reports it.
    private func bestCheckpointTestAccuracy() -> Double? {
        guard let best = progress.bestEpoch else { return nil }
        return progress.history.first { $0.epoch == best }?.testAccuracy
    }

    /// The one-line progress report of an epoch.
    public static func describe(_ m: EpochMetrics, of epochs: Int) -> String {
        func percent(_ value: Double) -> String { String(format: "%.2f%%", 100 * value) }
        var line = "epoch \(m.epoch)/\(epochs)  loss \(String(format: "%.4f", m.trainLoss))  train \(percent(m.trainAccuracy))"
        if let validation = m.validationAccuracy { line += "  val \(percent(validation))" }
        line += "  test \(percent(m.testAccuracy))  lr \(String(format: "%.4g", m.learningRate))"
        line += "  \(String(format: "%.1f", m.seconds)) s  \(String(format: "%.1f", m.imagesPerSecond)) img/s"
        return line
    }
}

/// The `metrics.json` of a finished run.
public struct RunSummary: Codable, Sendable {
    /// The configuration and its hash.
    public var config: TrainingConfig, identity: String
    /// Every epoch's metrics.
    public var history: [EpochMetrics]
    /// The best validation accuracy and its epoch (nil without validation).
    public var bestValidationAccuracy: Double?, bestEpoch: Int?
    /// Test accuracy of the best-validation weights (nil without validation).
    public var bestValidationTestAccuracy: Double?
    /// Test accuracy of the last epoch's weights.
    public var finalTestAccuracy: Double
    /// Parameters in all, prunable weights, and prunable weights the masks keep.
    public var parameters: Int, prunable: Int, remaining: Int
    /// The BLAS kernel family (and where oneDNN ran some products, which) and the thread count
    /// the run used.
    public var blasCore: String, threads: Int
    /// The device that ran the last epochs ("cpu", "cuda:0 NVIDIA H200") and its precision
    /// ("fp32", "tf32"); absent in files written before GPUs were supported.
    public var device: String?, precision: String?
    /// Whether the last epochs' training steps ran as CUDA graphs (false: turned off, or a
    /// capture failed and the log says which call); nil on the CPU and in older files.
    public var cudaGraphs: Bool? = nil
    /// The sparse engine's per-layer choice on the CPU; nil for unmasked runs and in older files.
    public var sparse: SparseChoice? = nil
    /// The CPU's column-chunk budgets (MiB) of the wide layers that left the default, and the
    /// wide layers evaluated on the direct kernels, as the run started; nil where none (and in
    /// older files).
    public var columnChunks: [String: Int]? = nil, evaluationDirectLayers: [String]? = nil
}
