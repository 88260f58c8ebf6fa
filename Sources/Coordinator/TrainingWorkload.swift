import Model
import TaskRuntime

/// What a training task asks of a worker, as the scheduler measures it: images per epoch and
/// epochs, and the key under which worker speeds are comparable. Two trainings of one preset
/// differ only in seed, mask and initial weights, which change no image's cost, so they share
/// a key; another dataset, width, image size, batch or precision does not.
struct TrainingWorkload: Hashable, Sendable {
    /// Speeds learned on one key predict every task of that key.
    let key: String
    /// Training images per epoch (the split after validation, within `trainLimit`).
    let imagesPerEpoch: Double
    /// The epoch the run ends after (a resumed run still ends there), and the one it starts after (late rewinding).
    let epochs: Int, startEpoch: Int

    /// The workload of a training task; nil for initialise and prune steps, which take
    /// seconds and are never held back or backed up.
    init?(_ spec: TaskSpec) {
        guard case .train(let config) = spec.step else { return nil }
        self.init(config)
    }

    /// The workload of a training configuration.
    init(_ config: TrainingConfig) {
        let available = switch config.dataset {
        // `loadData` generates the validation images on top of `trainCount`.
        case .synthetic: (config.synthetic?.trainCount ?? 512)
        case .fashionMNIST: 60_000 - config.validationSize
        case .cifar10: 50_000 - config.validationSize
        }
        let images = min(available, config.trainLimit ?? available)
        imagesPerEpoch = Double(max(1, images))
        epochs = config.lastEpoch
        startEpoch = config.startEpoch
        let side = config.inputShape.side
        key = "\(config.dataset.rawValue) width \(config.width) \(side)px batch \(config.batchSize)\(config.precision.map { " \($0.rawValue)" } ?? "")"
    }

    /// Images left to train after `epochsDone` epochs.
    func imagesLeft(after epochsDone: Int) -> Double {
        Double(max(0, epochs - max(epochsDone, startEpoch))) * imagesPerEpoch
    }
}
