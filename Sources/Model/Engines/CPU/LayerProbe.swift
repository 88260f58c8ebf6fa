import Foundation

/// One convolution's forward + backward pass on random data, or its evaluation pass with a
/// BatchNorm and ReLU after it, timed: what the start-up measurements (`ColumnChunkSelection`,
/// `SparseSelection`, `EvaluationRouteSelection`) compare a layer's variants by. It runs the
/// layer itself, so whatever the layer is set to (its chunk budget, its sparse path, its
/// evaluation route) is what gets timed; its saved input is overwritten, which is harmless
/// before training.
struct LayerProbe {
    let conv: Conv2d
    /// The BatchNorm (with ReLU) an evaluation probe applies after the layer; nil: a training probe.
    private let normalisation: BatchNorm2d?
    private let x: FeatureMap, dy: FeatureMap
    private let inputSpace = Workspace(), gradientSpace = Workspace(), inputGradient = Workspace()

    /// A probe of `conv` on `batch` random `height`×`width` inputs and random output gradients;
    /// with `evaluation`, of its evaluation pass followed by a BatchNorm and ReLU.
    init(_ conv: Conv2d, batch: Int, height: Int, width: Int, evaluation: Bool = false) {
        self.conv = conv
        normalisation = evaluation ? BatchNorm2d(name: "probe", channels: conv.outChannels, appliesReLU: true) : nil
        x = FeatureMap(data: inputSpace.reserve(conv.inChannels * batch * height * width), channels: conv.inChannels,
                       batch: batch, height: height, width: width)
        let outputHeight = conv.outputExtent(height), outputWidth = conv.outputExtent(width)
        dy = FeatureMap(data: gradientSpace.reserve(conv.outChannels * batch * outputHeight * outputWidth), channels: conv.outChannels,
                        batch: batch, height: outputHeight, width: outputWidth)
        var random = RandomStream(seed: 0, stream: .synthetic)
        for i in 0..<x.count { x.data[i] = random.nextSymmetric(1) }
        for i in 0..<dy.count { dy.data[i] = random.nextSymmetric(1) }
    }

    /// Seconds of one forward and backward pass (weight and input gradients), or of one
    /// evaluation pass.
    func pass() -> Double {
        let start = Date()
        if let normalisation {
            _ = conv.forward(x, normalisedBy: normalisation, training: false)
        } else {
            _ = conv.backward(conv.forward(x).sameShape(at: dy.data), into: inputGradient)
        }
        return Date().timeIntervalSince(start)
    }

    /// The fastest of repeated timings of each of `variants` ways to run the layer.
    struct Timings {
        /// Each variant's fastest pass, in seconds.
        var seconds: [Double]
        /// Whether each variant's two fastest timings agreed within the tolerance.
        var agreed: Bool
        /// The share of the CPUs other processes used while timing (0…1).
        var othersBusyShare: Double
    }

    /// Times `variants` ways to run the layer: `prepare(v)` sets variant `v` up, then one pass
    /// is timed. After one warm-up pass of each (which also sizes every buffer), rounds of one
    /// pass per variant, so a change of load hits all alike, until each variant's two fastest
    /// timings agree within `agreement` or `rounds` are done.
    func time(variants: Int, rounds: Int, agreement: Double, prepare: (Int) -> Void) -> Timings {
        func timed(_ variant: Int) -> Double {
            prepare(variant)
            return pass()
        }
        func agreed(_ seconds: [Double]) -> Bool { GEMMEngineSelection.agreedRate(seconds.map { 1 / $0 }, tolerance: agreement) != nil }
        for variant in 0..<variants { _ = timed(variant) }
        var timings = [[Double]](repeating: [], count: variants)
        let before = CPUShare.reading()
        for _ in 0..<rounds {
            for variant in 0..<variants { timings[variant].append(timed(variant)) }
            if timings.allSatisfy(agreed) { break }
        }
        return Timings(seconds: timings.map { $0.min() ?? 0 }, agreed: timings.allSatisfy(agreed),
                       othersBusyShare: CPUShare.reading().othersBusyShare(since: before))
    }
}
