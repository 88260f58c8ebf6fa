import Foundation

/// Which masked convolutions run on the sparse engine, chosen once when a masked training
/// starts by timing each layer's dense and sparse passes (forward + backward) on its real
/// mask and shape; a layer goes sparse only where that is at least `threshold` times faster.
///
/// `PRUNESWEEP_SPARSE` selects it: `off` (the default) keeps every layer dense, `on` makes
/// every masked layer sparse, `auto` measures. The default is off because the measured choice
/// depends on timing noise, and sparse and dense layers round differently: two runs of one
/// task could then give different bits (CI saw a worker's and an in-process run's aggregates
/// differ), which content-addressed results must not.
public enum SparseSelection {
    /// How the layers are chosen.
    public enum Mode: String, Codable, Sendable, CaseIterable {
        case off, on, auto

        /// `PRUNESWEEP_SPARSE`, or `off` when unset.
        public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(ModelError) -> Mode {
            guard let text = environment["PRUNESWEEP_SPARSE"], !text.isEmpty else { return .off }
            guard let mode = Mode(rawValue: text.lowercased()) else {
                throw .invalidConfiguration("PRUNESWEEP_SPARSE=\(text) is not one of off, on, auto; unset it to keep every layer dense")
            }
            return mode
        }
    }

    /// A layer goes sparse only where its measured pass is at least this many times faster.
    public static let threshold = 1.2

    /// Whether a layer measured at `dense` and `sparse` seconds should run sparse.
    public static func prefersSparse(dense: Double, sparse: Double) -> Bool { dense >= threshold * sparse }

    /// Chooses and installs the sparse path on `network`'s masked convolutions, for batches of
    /// `batchSize` `height`×`width` images. `fixed` (the layers a resumed run chose before)
    /// replaces the measurement in `auto` mode, so a resumed run computes exactly what it did.
    /// Returns nil, and changes nothing, when the network carries no mask.
    public static func install(on network: ResNet18, batchSize: Int, height: Int, width: Int, mode: Mode,
                               fixed: [String]? = nil) throws(ModelError) -> SparseChoice? {
        let layers = inputSizes(network, height: height, width: width).filter { $0.conv.weight.mask != nil }
        guard !layers.isEmpty else { return nil }
        var choices: [SparseChoice.Layer] = []
        var denseTimes: [String: Double] = [:]
        for (conv, inputHeight, inputWidth) in layers {
            conv.sparse = nil
            let name = String(conv.weight.name.dropLast(".weight".count))
            let density = Double(conv.weight.keptCount) / Double(conv.weight.value.count)
            var layer = SparseChoice.Layer(layer: name, density: density, sparse: false)
            switch mode {
            case .off:
                break
            case .on:
                layer.sparse = true
            case .auto:
                if let fixed {
                    layer.sparse = fixed.contains(name)
                } else if density < 1 {
                    let key = "\(conv.inChannels) \(conv.outChannels) \(conv.kernel) \(conv.stride) \(inputHeight) \(inputWidth)"
                    var dense = denseTimes[key] ?? 0
                    if dense == 0 {
                        dense = try time(conv, batch: batchSize, height: inputHeight, width: inputWidth)
                        denseTimes[key] = dense
                    }
                    conv.sparse = try SparseConvolution(conv)
                    let sparse = try time(conv, batch: batchSize, height: inputHeight, width: inputWidth)
                    conv.sparse = nil
                    layer.denseSeconds = dense
                    layer.sparseSeconds = sparse
                    layer.sparse = prefersSparse(dense: dense, sparse: sparse)
                }
            }
            if layer.sparse { conv.sparse = try SparseConvolution(conv) }
            choices.append(layer)
        }
        return SparseChoice(mode: mode, layers: choices)
    }

    /// Every convolution with the input extents it sees, in `state_dict` order.
    static func inputSizes(_ network: ResNet18, height: Int, width: Int) -> [(conv: Conv2d, height: Int, width: Int)] {
        var result: [(conv: Conv2d, height: Int, width: Int)] = [(network.conv1, height, width)]
        var h = height, w = width
        for block in network.blocks {
            result.append((block.conv1, h, w))
            let outputHeight = block.conv1.outputExtent(h), outputWidth = block.conv1.outputExtent(w)
            result.append((block.conv2, outputHeight, outputWidth))
            if let shortcut = block.shortcut { result.append((shortcut.conv, h, w)) }
            h = outputHeight
            w = outputWidth
        }
        return result
    }

    /// The fastest of a few forward + backward passes of `conv` on random data, in seconds,
    /// after one warm-up pass (which also sizes every buffer).
    static func time(_ conv: Conv2d, batch: Int, height: Int, width: Int) throws(ModelError) -> Double {
        let inputSpace = Workspace(), gradientSpace = Workspace(), inputGradient = Workspace()
        let x = FeatureMap(data: inputSpace.reserve(conv.inChannels * batch * height * width), channels: conv.inChannels,
                           batch: batch, height: height, width: width)
        let dy = FeatureMap(data: gradientSpace.reserve(conv.outChannels * batch * conv.outputExtent(height) * conv.outputExtent(width)),
                            channels: conv.outChannels, batch: batch, height: conv.outputExtent(height), width: conv.outputExtent(width))
        var random = RandomStream(seed: 0, stream: .synthetic)
        for i in 0..<x.count { x.data[i] = random.nextSymmetric(1) }
        for i in 0..<dy.count { dy.data[i] = random.nextSymmetric(1) }
        func pass() { _ = conv.backward(conv.forward(x).sameShape(at: dy.data), into: inputGradient) }
        pass()
        var best = Double.infinity, spent = 0.0, repeats = 0
        while repeats < 3 && (repeats == 0 || spent < 0.5) {
            let start = Date()
            pass()
            let seconds = Date().timeIntervalSince(start)
            best = Swift.min(best, seconds)
            spent += seconds
            repeats += 1
        }
        return best
    }
}

/// The sparse engine's per-layer choice for one run: recorded in `metrics.json` and, so that
/// a resumed run keeps it, in the checkpoint's progress.
public struct SparseChoice: Codable, Sendable, Equatable {
    /// One masked convolution.
    public struct Layer: Codable, Sendable, Equatable {
        /// The layer's name without `.weight`, e.g. `layer1.0.conv1`.
        public var layer: String
        /// Fraction of its weights the mask keeps.
        public var density: Double
        /// Whether it runs sparse.
        public var sparse: Bool
        /// Its measured forward + backward seconds, dense and sparse (nil where not measured).
        public var denseSeconds: Double? = nil, sparseSeconds: Double? = nil
    }

    /// How the layers were chosen.
    public var mode: SparseSelection.Mode
    /// Every masked convolution in `state_dict` order.
    public var layers: [Layer]

    /// The names of the sparse layers.
    public var sparseLayers: [String] { layers.filter(\.sparse).map(\.layer) }

    /// Measured dense time of the masked convolutions over their time as chosen; nil unless
    /// every layer was measured.
    public var expectedSpeedUp: Double? {
        var dense = 0.0, chosen = 0.0
        for layer in layers {
            guard let d = layer.denseSeconds, let s = layer.sparseSeconds else {
                if layer.density < 1 { return nil }
                continue
            }
            dense += d
            chosen += layer.sparse ? s : d
        }
        return chosen > 0 ? dense / chosen : nil
    }

    /// The one log line: layers sparse and dense, and the expected speed-up of the convolutions.
    public var summary: String {
        let dense = layers.filter { !$0.sparse }.map(\.layer)
        var line = "sparse engine (\(mode.rawValue)): \(layers.count - dense.count) of \(layers.count) masked convolutions sparse"
        if let speedUp = expectedSpeedUp { line += String(format: ", their passes %.2f× faster than dense", speedUp) }
        if !dense.isEmpty && dense.count < layers.count { line += "; dense: " + dense.joined(separator: ", ") }
        return line
    }
}
