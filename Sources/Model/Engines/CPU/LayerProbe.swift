import Foundation

/// One convolution's forward + backward pass on random data, timed: what the start-up
/// measurements (`ColumnChunkSelection`, `SparseSelection`) compare a layer's variants by.
/// It runs the layer itself, so whatever the layer is set to (its chunk budget, its sparse
/// path) is what gets timed; its saved input is overwritten, which is harmless before training.
struct LayerProbe {
    let conv: Conv2d
    private let x: FeatureMap, dy: FeatureMap
    private let inputSpace = Workspace(), gradientSpace = Workspace(), inputGradient = Workspace()

    /// A probe of `conv` on `batch` random `height`×`width` inputs and random output gradients.
    init(_ conv: Conv2d, batch: Int, height: Int, width: Int) {
        self.conv = conv
        x = FeatureMap(data: inputSpace.reserve(conv.inChannels * batch * height * width), channels: conv.inChannels,
                       batch: batch, height: height, width: width)
        let outputHeight = conv.outputExtent(height), outputWidth = conv.outputExtent(width)
        dy = FeatureMap(data: gradientSpace.reserve(conv.outChannels * batch * outputHeight * outputWidth), channels: conv.outChannels,
                        batch: batch, height: outputHeight, width: outputWidth)
        var random = RandomStream(seed: 0, stream: .synthetic)
        for i in 0..<x.count { x.data[i] = random.nextSymmetric(1) }
        for i in 0..<dy.count { dy.data[i] = random.nextSymmetric(1) }
    }

    /// Seconds of one forward and backward pass (weight and input gradients).
    func pass() -> Double {
        let start = Date()
        _ = conv.backward(conv.forward(x).sameShape(at: dy.data), into: inputGradient)
        return Date().timeIntervalSince(start)
    }
}
