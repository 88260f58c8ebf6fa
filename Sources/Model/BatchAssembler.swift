/// Turns dataset images into a network input: per-sample random crop with zero padding and
/// horizontal flip (when augmenting), normalisation, and the channel-major layout.
///
/// Random draws are made sequentially per sample (crop row, crop column, flip) before the
/// pixels are copied in parallel, so a batch depends only on the stream's state.
public final class BatchAssembler {
    private let input = Workspace()
    /// The labels of the last assembled batch.
    public private(set) var labels: [Int32] = []
    private var crops: [(dy: Int, dx: Int, flip: Bool)] = []

    /// An assembler (its buffers grow on first use).
    public init() {}

    /// The crop padding used for an image side: 4 for CIFAR's 32, 2 for smaller images.
    public static func cropPadding(forSide side: Int) -> Int { side >= 32 ? 4 : 2 }

    /// One sample's augmentation: crop offsets (row, column) in 0...2·padding and a flip.
    static func drawCrop(padding: Int, random: inout RandomStream) -> (dy: Int, dx: Int, flip: Bool) {
        let dy = random.nextIndex(2 * padding + 1), dx = random.nextIndex(2 * padding + 1)
        return (dy, dx, random.nextUnitFloat() < 0.5)
    }

    /// Fills a batch with `dataset`'s images at `indices`; augments with `random` when given.
    public func assemble(_ dataset: ImageDataset, indices: ArraySlice<Int>, random: inout RandomStream?) -> FeatureMap {
        let n = indices.count, c = dataset.channels, h = dataset.height, w = dataset.width
        let padding = random == nil ? 0 : Self.cropPadding(forSide: Swift.min(h, w))
        crops.removeAll(keepingCapacity: true)
        labels.removeAll(keepingCapacity: true)
        for index in indices {
            labels.append(dataset.labels[index])
            if random != nil {
                crops.append(Self.drawCrop(padding: padding, random: &random!))
            } else {
                crops.append((padding, padding, false))
            }
        }
        let batch = FeatureMap(data: input.reserve(n * c * h * w), channels: c, batch: n, height: h, width: w)
        let scale = dataset.std.map { 1 / (255 * $0) }, shift = zip(dataset.mean, dataset.std).map { -$0 / $1 }
        dataset.pixels.withUnsafeBufferPointer { pixels in
            crops.withUnsafeBufferPointer { crops in
                let order = Array(indices)
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
