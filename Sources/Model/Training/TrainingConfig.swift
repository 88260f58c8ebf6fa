import Crypto
import Foundation

/// Everything that determines a training run's result, as a typed record. A run is a pure
/// function of its configuration: the same configuration (and thread count) gives the same
/// weights, and `identity` — the hash of the configuration — names the run.
public struct TrainingConfig: Codable, Hashable, Sendable {
    /// Where the images come from.
    public enum Dataset: String, Codable, Hashable, Sendable, CaseIterable {
        /// CIFAR-10, binary version.
        case cifar10
        /// Fashion-MNIST, IDX gzip files (Debian's `dataset-fashion-mnist`).
        case fashionMNIST = "fashion-mnist"
        /// The generated, learnable set of `SyntheticDataset`.
        case synthetic
    }

    /// The image source.
    public var dataset: Dataset
    /// Network width (64 = the paper).
    public var width: Int
    /// Training epochs.
    public var epochs: Int
    /// Images per step (the last batch of an epoch may be smaller).
    public var batchSize: Int
    /// The base learning rate.
    public var learningRate: Double
    /// How the learning rate changes.
    public var schedule: LearningRateSchedule
    /// Momentum, weight decay, Nesterov.
    public var optimizer: SGD
    /// Random crop with zero padding and horizontal flip on training images.
    public var augment: Bool
    /// Training images held out for validation by the fixed split seed.
    public var validationSize: Int
    /// Use only this many training images (after the split); nil for all.
    public var trainLimit: Int?
    /// Use only this many test images; nil for all.
    public var testLimit: Int?
    /// Images per split of the synthetic dataset (train, test) and their side.
    public var synthetic: SyntheticShape?
    /// The run seed: initialisation, shuffling and augmentation streams derive from it.
    public var seed: UInt64
    /// Epochs already behind the starting weights (late rewinding to θK, open_lth semantics):
    /// training runs epochs K+1…epochs with the learning-rate schedule and the data order
    /// fast-forwarded to epoch K+1 and a fresh optimiser. 0 starts at the beginning.
    public var startEpoch: Int
    /// The last epoch this run trains, when it is the first part of a longer one: θK for late
    /// rewinding is the recipe's epochs 1…K (the schedule still spans `epochs`). nil trains to
    /// `epochs`. Left out of the canonical JSON when nil, so earlier configurations keep their identity.
    public var stopEpoch: Int?
    /// The GPU arithmetic (`fp32` or `tf32`); nil leaves it to the device (TF32 on a GPU). The
    /// CPU always computes in fp32. Left out of the canonical JSON when nil, so configurations
    /// written before the field existed keep their identity.
    public var precision: Precision?

    /// The shape of a synthetic dataset.
    public struct SyntheticShape: Codable, Hashable, Sendable {
        /// Training and test images.
        public var trainCount: Int, testCount: Int
        /// Image side in pixels.
        public var side: Int

        /// A synthetic dataset shape.
        public init(trainCount: Int, testCount: Int, side: Int) {
            self.trainCount = trainCount
            self.testCount = testCount
            self.side = side
        }
    }

    /// A configuration; the defaults are the paper recipe (SGD 0.1/0.9/5e-4, MultiStepLR
    /// [60, 120, 160] × 0.2, 200 epochs, batch 128, augmentation, 45k/5k split).
    public init(dataset: Dataset = .cifar10, width: Int = 64, epochs: Int = 200, batchSize: Int = 128,
                learningRate: Double = 0.1, schedule: LearningRateSchedule = .multiStep(milestones: [60, 120, 160], gamma: 0.2),
                optimizer: SGD = SGD(), augment: Bool = true, validationSize: Int = 5000,
                trainLimit: Int? = nil, testLimit: Int? = nil, synthetic: SyntheticShape? = nil, seed: UInt64 = 0, startEpoch: Int = 0,
                precision: Precision? = nil, stopEpoch: Int? = nil) {
        self.dataset = dataset
        self.width = width
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.schedule = schedule
        self.optimizer = optimizer
        self.augment = augment
        self.validationSize = validationSize
        self.trainLimit = trainLimit
        self.testLimit = testLimit
        self.synthetic = synthetic
        self.seed = seed
        self.startEpoch = startEpoch
        self.precision = precision
        self.stopEpoch = stopEpoch
    }

    /// The epoch the run ends after: `stopEpoch`, else `epochs`.
    public var lastEpoch: Int { stopEpoch ?? epochs }

    /// Checks every field, naming the first that cannot work.
    public func validate() throws(ModelError) {
        guard width >= 1 else { throw .invalidConfiguration("width must be ≥ 1, got \(width)") }
        guard epochs >= 1 else { throw .invalidConfiguration("epochs must be ≥ 1, got \(epochs)") }
        guard batchSize >= 1 else { throw .invalidConfiguration("batchSize must be ≥ 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else { throw .invalidConfiguration("learningRate must be a positive number, got \(learningRate)") }
        guard optimizer.momentum >= 0, optimizer.weightDecay >= 0 else {
            throw .invalidConfiguration("momentum and weightDecay must be ≥ 0, got \(optimizer.momentum) and \(optimizer.weightDecay)")
        }
        guard startEpoch >= 0, startEpoch < epochs else { throw .invalidConfiguration("startEpoch must be in 0..<epochs (\(epochs)), got \(startEpoch)") }
        if let stopEpoch, !(startEpoch < stopEpoch && stopEpoch <= epochs) {
            throw .invalidConfiguration("stopEpoch must be in \(startEpoch + 1)...\(epochs) (after startEpoch, within epochs), got \(stopEpoch)")
        }
        guard validationSize >= 0 else { throw .invalidConfiguration("validationSize must be ≥ 0, got \(validationSize)") }
        if case .multiStep(let milestones, let gamma) = schedule {
            guard milestones == milestones.sorted(), milestones.allSatisfy({ $0 >= 1 }), gamma > 0 else {
                throw .invalidConfiguration("schedule milestones must be ascending epochs ≥ 1 and gamma > 0, got \(milestones) × \(gamma)")
            }
        }
        if dataset == .synthetic && synthetic == nil {
            throw .invalidConfiguration("dataset synthetic needs a synthetic shape (trainCount, testCount, side)")
        }
    }

    /// The canonical JSON form: sorted keys, so equal configurations give equal bytes.
    public var canonicalJSON: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain numbers, strings and enums cannot fail.
        return (try? encoder.encode(self)) ?? Data()
    }

    /// The SHA-256 of the canonical JSON, in hex: the run's identity.
    public var identity: String {
        SHA256.hash(data: canonicalJSON).hexDigits
    }

    /// Image channels and side of the dataset (the synthetic set is 3×side×side).
    public var inputShape: (channels: Int, side: Int) {
        switch dataset {
        case .cifar10: (3, 32)
        case .fashionMNIST: (1, 28)
        case .synthetic: (3, synthetic?.side ?? 16)
        }
    }

    /// Loads the images this configuration trains and tests on; `directory` overrides the
    /// dataset's default location.
    public func loadData(from directory: URL? = nil) throws(ModelError) -> DataSplits {
        let files: (train: ImageDataset, test: ImageDataset)
        switch dataset {
        case .cifar10:
            guard let directory else {
                throw .invalidConfiguration("dataset cifar10 needs its directory (--data-dir) holding data_batch_1..5.bin and test_batch.bin")
            }
            files = try CIFAR10.load(from: directory)
        case .fashionMNIST:
            files = try FashionMNIST.load(from: directory ?? FashionMNIST.defaultDirectory)
        case .synthetic:
            let shape = synthetic ?? SyntheticShape(trainCount: 512, testCount: 128, side: 16)
            files = try SyntheticDataset.make(trainCount: shape.trainCount + validationSize, testCount: shape.testCount, size: shape.side)
        }
        return try DataSplits(trainFiles: files.train, test: files.test, validationSize: validationSize, trainLimit: trainLimit, testLimit: testLimit)
    }
}
