import Foundation
import Model

/// Runs one task's step on this machine: reads its input artifacts from a store, calls the
/// step (`Steps`, `Trainer`) in a scratch directory, and puts the outputs back in the store.
/// The worker process runs tasks with it; the tests run whole plans with it.
public struct StepRunner: Sendable {
    /// Where inputs come from and outputs go.
    public let store: ArtifactStore
    /// Scratch space for run directories.
    public let scratch: URL
    /// Dataset directory override (nil: each dataset's default).
    public let dataDirectory: URL?
    /// Where training steps run; pruning steps always run on the CPU (SynFlow scores in float64).
    public let device: ComputeDevice

    /// A runner over `store`, working under `scratch`, training on `device`.
    public init(store: ArtifactStore, scratch: URL, dataDirectory: URL? = nil, device: ComputeDevice = .cpu) {
        self.store = store
        self.scratch = scratch
        self.dataDirectory = dataDirectory
        self.device = device
    }

    /// What a finished step produced.
    public struct Output: Sendable {
        /// Output artifacts by role.
        public var artifacts: [String: String]
        /// The training run's summary (train steps only).
        public var summary: RunSummary?
    }

    /// Runs `task`, whose inputs (by role) are artifact hashes; `checkpoint`, when given, is
    /// the hash of an epoch checkpoint of an earlier attempt to resume from. `onEpoch` hears
    /// each finished epoch with the hash of its checkpoint, stored; `isCancelled` is asked
    /// before every epoch and stops the step with `SweepError.cancelled`.
    public func run(_ task: TaskSpec, inputs: [String: String], checkpoint: String? = nil, dataDirectory: URL? = nil,
                    onEpoch: @escaping (EpochMetrics, String) -> Void = { _, _ in },
                    isCancelled: @escaping () -> Bool = { false },
                    log: @escaping (String) -> Void = { _ in }) throws -> Output {
        let directory = scratch.appendingPathComponent(task.id)
        let dataDirectory = dataDirectory ?? self.dataDirectory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func file(_ role: String) throws -> URL {
            guard let hash = inputs[role] else { throw SweepError.invalid("task \(task.id.prefix(12)) has no input \(role)") }
            // Reading checks the bytes against their hash; the step then reads the stored file itself.
            _ = try store.data(hash)
            return store.url(hash)
        }
        switch task.step {
        case .initialise(let architecture, let seed):
            let url = directory.appendingPathComponent("theta0.safetensors")
            try Steps.initialWeights(architecture: architecture, seed: seed, output: url)
            return Output(artifacts: ["weights": try store.put(file: url)], summary: nil)

        case .prune(let method, let config):
            let data = method.needsData ? try config.loadData(from: dataDirectory).train : nil
            let shape = config.inputShape
            let url = directory.appendingPathComponent("mask.safetensors")
            log("prune (\(method.name)) runs on the CPU")
            let report = try Steps.prune(method: method, architecture: .init(width: config.width, inputChannels: shape.channels, classes: 10),
                                         inputSide: shape.side, weights: try file("weights"),
                                         oldMask: inputs["mask"] == nil ? nil : try file("mask"),
                                         data: data, seed: config.seed, output: url, log: log)
            let reportData = try JSONEncoder().encode(report)
            return Output(artifacts: ["mask": try store.put(file: url), "report": try store.put(reportData)], summary: nil)

        case .train(let config):
            let run = directory.appendingPathComponent("run")
            try? FileManager.default.removeItem(at: run)
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            if let checkpoint { try store.data(checkpoint).write(to: run.appendingPathComponent("checkpoint.safetensors")) }
            let data = try config.loadData(from: dataDirectory)
            let initial = try Safetensors(contentsOf: try file("initial"))
            var masks: [String: Tensor] = [:]
            if inputs["mask"] != nil {
                let probe = ResNet18(.init(width: config.width, inputChannels: data.train.channels, classes: data.train.classes))
                let set = try MaskSet(from: try Safetensors(contentsOf: try file("mask")), for: probe, source: "mask")
                masks = set.tensors
            }
            let store = store
            let trainer = try Trainer(config: config, data: data, directory: run, initialState: initial, masks: masks, device: device, log: log)
            log("train runs on \(trainer.engine.deviceName) in \(trainer.engine.precisionName)")
            var reported = trainer.history.count
            // A checkpoint of the last epoch: the earlier attempt trained to the end but its
            // result never reached the coordinator, so only the final files are left to write.
            if trainer.isFinished { try trainer.run() }
            while !trainer.isFinished {
                if isCancelled() { throw SweepError.cancelled(task.id) }
                try trainer.run(stopAfterEpoch: reported + 1)
                reported += 1
                if let metrics = trainer.history.last {
                    onEpoch(metrics, try store.put(file: trainer.checkpointURL))
                }
            }
            let summaryURL = run.appendingPathComponent("metrics.json")
            let summary = try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: summaryURL))
            return Output(artifacts: ["weights": try store.put(file: run.appendingPathComponent("weights.safetensors")),
                                      "metrics": try store.put(file: summaryURL)], summary: summary)
        }
    }
}
