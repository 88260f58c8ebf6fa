/// A small, learnable image set for tests and the smoke preset: each class has a fixed random
/// prototype image made of 4×4 coarse blocks (so crops that shift it by a few pixels keep it
/// recognisable), and every sample is its class prototype plus pixel noise. A network
/// separates the classes within a few epochs, so tests can check that training learns.
public enum SyntheticDataset {
    /// Training and test sets of the given sizes, drawn from `seed`.
    public static func make(trainCount: Int, testCount: Int, channels: Int = 3, size: Int = 16,
                            classes: Int = 10, seed: UInt64 = 0) throws(ModelError) -> (train: ImageDataset, test: ImageDataset) {
        guard trainCount > 0, testCount > 0, channels > 0, size >= 8, classes >= 2 else {
            throw .invalidConfiguration("synthetic data needs positive counts, size ≥ 8 and ≥ 2 classes")
        }
        var random = RandomStream(seed: seed, stream: .synthetic)
        let imageSize = channels * size * size
        let prototypes = (0..<classes).map { _ in
            let coarse = (0..<(channels * 16)).map { _ in Float(random.nextIndex(256)) }
            return (0..<imageSize).map { i in
                let (c, y, x) = (i / (size * size), (i / size) % size, i % size)
                return coarse[c * 16 + (y * 4 / size) * 4 + x * 4 / size]
            }
        }
        func sample(_ count: Int, _ name: String) throws(ModelError) -> ImageDataset {
            var pixels: [UInt8] = []
            pixels.reserveCapacity(count * imageSize)
            var labels: [Int32] = []
            for _ in 0..<count {
                let label = random.nextIndex(classes)
                labels.append(Int32(label))
                for value in prototypes[label] {
                    pixels.append(UInt8(Swift.min(255, Swift.max(0, value + random.nextSymmetric(64)))))
                }
            }
            return try ImageDataset(name: name, channels: channels, height: size, width: size, classes: classes,
                                    pixels: pixels, labels: labels,
                                    mean: [Float](repeating: 0.5, count: channels), std: [Float](repeating: 0.29, count: channels))
        }
        return (try sample(trainCount, "synthetic/train"), try sample(testCount, "synthetic/test"))
    }
}
