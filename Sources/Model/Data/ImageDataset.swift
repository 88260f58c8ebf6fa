/// A labelled image set held as raw 8-bit pixels, NCHW, with the per-channel mean and
/// standard deviation (on the [0, 1] scale) that normalise it.
public struct ImageDataset: Sendable {
    /// A short name for logs and errors ("cifar10/train").
    public var name: String
    /// Channels, rows and columns of every image.
    public var channels: Int, height: Int, width: Int
    /// The number of classes; labels lie in 0..<classes.
    public var classes: Int
    /// The pixels, image after image, each `channels × height × width` bytes.
    public var pixels: [UInt8]
    /// One label per image.
    public var labels: [Int32]
    /// Per-channel normalisation: `(pixel / 255 − mean) / std`.
    public var mean: [Float], std: [Float]

    /// A dataset from its parts; `pixels` must hold `labels.count` images.
    public init(name: String, channels: Int, height: Int, width: Int, classes: Int,
                pixels: [UInt8], labels: [Int32], mean: [Float], std: [Float]) throws(ModelError) {
        guard pixels.count == labels.count * channels * height * width else {
            throw .invalidData("\(name): \(pixels.count) pixel bytes do not make \(labels.count) images of \(channels)×\(height)×\(width)")
        }
        guard mean.count == channels, std.count == channels else {
            throw .invalidData("\(name): normalisation needs \(channels) means and stds")
        }
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= classes }) {
            throw .invalidData("\(name): label \(bad) is outside 0..<\(classes)")
        }
        self.name = name
        self.channels = channels
        self.height = height
        self.width = width
        self.classes = classes
        self.pixels = pixels
        self.labels = labels
        self.mean = mean
        self.std = std
    }

    /// The number of images.
    public var count: Int { labels.count }
    /// Bytes per image.
    public var imageSize: Int { channels * height * width }

    /// The images at `indices`, in that order.
    public func subset(_ indices: [Int], name: String) -> ImageDataset {
        var copy = self
        copy.name = name
        copy.labels = indices.map { labels[$0] }
        copy.pixels = []
        copy.pixels.reserveCapacity(indices.count * imageSize)
        for index in indices { copy.pixels += pixels[(index * imageSize)..<((index + 1) * imageSize)] }
        return copy
    }
}

/// The three parts a run uses: training, validation (held out from the training files by a
/// fixed seed) and test.
public struct DataSplits: Sendable {
    /// Images the network trains on.
    public var train: ImageDataset
    /// Images held out of the training files for model selection (may be empty).
    public var validation: ImageDataset
    /// The official test images.
    public var test: ImageDataset

    /// The seed of the train/validation split: the same for every run seed, as in the study.
    public static let splitSeed: UInt64 = 42

    /// Holds out `validationSize` training images chosen by a permutation seeded with
    /// `splitSeed`, then keeps the first `trainLimit` remaining ones (all when nil).
    public init(trainFiles: ImageDataset, test: ImageDataset, validationSize: Int, trainLimit: Int? = nil, testLimit: Int? = nil) throws(ModelError) {
        guard validationSize >= 0, validationSize < trainFiles.count else {
            throw .invalidConfiguration("validationSize \(validationSize) must be in 0..<\(trainFiles.count), the images in \(trainFiles.name)")
        }
        var random = RandomStream(seed: Self.splitSeed, stream: .split)
        let order = random.permutation(trainFiles.count)
        var trainIndices = Array(order[validationSize...])
        if let trainLimit {
            guard trainLimit > 0 else { throw .invalidConfiguration("trainLimit must be positive, got \(trainLimit)") }
            trainIndices = Array(trainIndices.prefix(trainLimit))
        }
        train = trainFiles.subset(trainIndices, name: trainFiles.name + "/train")
        validation = trainFiles.subset(Array(order[..<validationSize]), name: trainFiles.name + "/validation")
        if let testLimit, testLimit < test.count {
            guard testLimit > 0 else { throw .invalidConfiguration("testLimit must be positive, got \(testLimit)") }
            self.test = test.subset(Array(0..<testLimit), name: test.name)
        } else {
            self.test = test
        }
    }
}
