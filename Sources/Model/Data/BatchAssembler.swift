/// What one batch is made of: which images, and each one's crop offsets and flip. The
/// trainer draws plans from its random streams; the CPU assembler and the GPU's augmentation
/// kernel both consume them, so every device sees the same images in the same order with the
/// same augmentation.
public struct BatchPlan: Equatable, Sendable {
    /// One image's augmentation: crop offsets (row, column) in 0...2·padding and a flip.
    public struct Crop: Equatable, Sendable {
        public var dy: Int, dx: Int, flip: Bool
    }

    /// Dataset indices of the batch's images, in order.
    public var indices: [Int]
    /// One crop per image.
    public var crops: [Crop]
    /// The zero padding the crops assume (0 without augmentation).
    public var padding: Int

    /// The crop padding used for an image side: 4 for CIFAR's 32, 2 for smaller images.
    public static func cropPadding(forSide side: Int) -> Int { side >= 32 ? 4 : 2 }

    /// One sample's augmentation, drawn as crop row, crop column, flip.
    static func drawCrop(padding: Int, random: inout RandomStream) -> Crop {
        let dy = random.nextIndex(2 * padding + 1), dx = random.nextIndex(2 * padding + 1)
        return Crop(dy: dy, dx: dx, flip: random.nextUnitFloat() < 0.5)
    }

    /// The plan of `indices` in `dataset`: random crops and flips drawn image by image from
    /// `random` when given, else the centred, unflipped images.
    public init(_ dataset: ImageDataset, indices: ArraySlice<Int>, random: inout RandomStream?) {
        let padding = random == nil ? 0 : Self.cropPadding(forSide: Swift.min(dataset.height, dataset.width))
        self.indices = Array(indices)
        self.padding = padding
        if random != nil {
            crops = indices.map { _ in Self.drawCrop(padding: padding, random: &random!) }
        } else {
            crops = Array(repeating: Crop(dy: 0, dx: 0, flip: false), count: indices.count)
        }
    }

    /// The plan as the GPU reads it: four 32-bit words per image (index, dy, dx, flip).
    public var packed: [Int32] {
        var words: [Int32] = []
        words.reserveCapacity(4 * indices.count)
        for (index, crop) in zip(indices, crops) { words += [Int32(index), Int32(crop.dy), Int32(crop.dx), crop.flip ? 1 : 0] }
        return words
    }
}

/// Turns dataset images into a network input by a `BatchPlan`: per-sample crop with zero
/// padding and horizontal flip, normalisation, and the channel-major layout.
public final class BatchAssembler {
    private let input = Workspace()
    /// The labels of the last assembled batch.
    public private(set) var labels: [Int32] = []

    /// An assembler (its buffers grow on first use).
    public init() {}

    /// Fills a batch with `dataset`'s images as `plan` says.
    public func assemble(_ dataset: ImageDataset, plan: BatchPlan) -> FeatureMap {
        let n = plan.indices.count, c = dataset.channels, h = dataset.height, w = dataset.width
        let padding = plan.padding
        labels.removeAll(keepingCapacity: true)
        for index in plan.indices { labels.append(dataset.labels[index]) }
        let batch = FeatureMap(data: input.reserve(n * c * h * w), channels: c, batch: n, height: h, width: w)
        let scale = dataset.std.map { 1 / (255 * $0) }, shift = zip(dataset.mean, dataset.std).map { -$0 / $1 }
        dataset.pixels.withUnsafeBufferPointer { pixels in
            plan.crops.withUnsafeBufferPointer { crops in
                let order = plan.indices
                Parallel.forEachRange(n) { images in
                    for image in images {
                        let crop = crops[image]
                        let source = pixels.baseAddress! + order[image] * c * h * w
                        for channel in 0..<c {
                            let plane = source + channel * h * w
                            let target = batch.data + (channel * n + image) * h * w
                            let a = scale[channel], b = shift[channel]
                            for y in 0..<h {
                                let sy = y + crop.dy - padding
                                for x in 0..<w {
                                    let sx = (crop.flip ? w - 1 - x : x) + crop.dx - padding
                                    let inside = sy >= 0 && sy < h && sx >= 0 && sx < w
                                    target[y * w + x] = inside ? Float(plane[sy * w + sx]) * a + b : b
                                }
                            }
                        }
                    }
                }
            }
        }
        return batch
    }
}
