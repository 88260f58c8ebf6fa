import CSparse
import Foundation
import KernelStamp

/// Which masked convolutions run on the sparse engine, chosen when a masked training starts by
/// timing each layer's dense and sparse passes (forward + backward) on its real mask and shape;
/// a layer goes sparse only where that is at least `threshold` times faster.
///
/// Sparse and dense layers round differently, so the choice decides a run's bits, and two runs
/// of one task must not differ (CI saw a worker's and an in-process run of one sweep differ when
/// each process timed the layers itself). So each verdict is kept per machine in the user
/// cache, keyed by the CPU model, BLAS build, thread counts, the layer's shape, input extent,
/// batch and density bucket; it is measured under a file lock, so processes starting together
/// wait for one measurement and read the same answer, and it is kept even when the timings
/// never agreed (a choice that stays beats a choice that wavers). A resumed run keeps the
/// layers its checkpoint recorded.
///
/// `PRUNESWEEP_SPARSE` selects it: `auto` (the default) measures or reads the cache, `on`
/// makes every masked layer sparse, `off` keeps every layer dense.
public enum SparseSelection {
    /// How the layers are chosen.
    public enum Mode: String, Codable, Sendable, CaseIterable {
        case off, on, auto

        /// `PRUNESWEEP_SPARSE`, or `auto` when unset.
        public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(ModelError) -> Mode {
            guard let text = environment["PRUNESWEEP_SPARSE"], !text.isEmpty else { return .auto }
            guard let mode = Mode(rawValue: text.lowercased()) else {
                throw .invalidConfiguration("PRUNESWEEP_SPARSE=\(text) is not one of off, on, auto; unset it to let each layer's measured speed choose")
            }
            return mode
        }
    }

    /// A layer goes sparse only where its measured pass is at least this many times faster.
    public static let threshold = 1.2
    /// How closely the two fastest timings of one path must agree before measuring stops.
    public static let agreement = 0.1
    /// Rounds (one dense and one sparse pass each) at most, when timings keep disagreeing.
    static let maximumRounds = 5

    /// Whether a layer measured at `dense` and `sparse` seconds should run sparse.
    public static func prefersSparse(dense: Double, sparse: Double) -> Bool { dense >= threshold * sparse }

    /// One kind of layer's measurement on this machine, as the cache keeps it.
    public struct Verdict: Codable, Sendable, Equatable {
        /// The fastest forward + backward pass, dense and sparse, in seconds.
        public var denseSeconds: Double, sparseSeconds: Double
        /// Whether each path's two fastest timings agreed within `agreement`, in every sweep.
        public var agreed: Bool
        /// When it was last measured, and the largest share of the CPUs other processes used
        /// during a sweep (0…1).
        public var measuredAt: Date, othersBusyShare: Double

        /// Whether such a layer runs sparse.
        public var sparse: Bool { prefersSparse(dense: denseSeconds, sparse: sparseSeconds) }

        /// Each path's faster time of this measurement and `later`.
        func fastest(with later: Verdict) -> Verdict {
            Verdict(denseSeconds: Swift.min(denseSeconds, later.denseSeconds), sparseSeconds: Swift.min(sparseSeconds, later.sparseSeconds),
                    agreed: agreed && later.agreed, measuredAt: later.measuredAt, othersBusyShare: Swift.max(othersBusyShare, later.othersBusyShare))
        }
    }

    /// The cache file's content: verdicts by `layerKey`.
    struct VerdictFile: Codable {
        var layers: [String: Verdict] = [:]
    }

    /// The machine's verdict file: one per CPU model, BLAS build and kernel family, sparse and
    /// direct-convolution kernel families, the kernels' sources (`KernelSources.digest`: a
    /// build whose convolution kernels changed measures again; other builds share the file)
    /// and thread counts: the things a timing holds only while they hold.
    public static var cacheURL: URL {
        UserCache.file("sparse-layers", key: [BLASCoreSelection.cpuModel, BLAS.configuration, BLAS.coreName,
                                              csparse_uses_avx2() != 0 ? "avx2" : "scalar", "direct level \(Conv2d.availableDirectLevel)",
                                              "kernels \(KernelSources.digest)", "threads \(BLAS.threads) \(Parallel.threads)", "verdicts 1"])
    }

    /// Density bucket: quarter steps of log2 (each about 19% wider than the last), so masks of
    /// one method and level share a verdict while 1%, 5%, 10% and 20% each get their own.
    static func densityBucket(_ density: Double) -> Int { Int((4 * log2(Swift.max(density, 1e-9))).rounded()) }

    /// What a verdict holds for: the convolution's shape, its input extent, the batch and the
    /// density bucket.
    static func layerKey(_ conv: Conv2d, height: Int, width: Int, batch: Int, density: Double) -> String {
        "\(conv.inChannels)>\(conv.outChannels) k\(conv.kernel) s\(conv.stride) p\(conv.padding) \(height)x\(width) batch \(batch) density 2^(\(densityBucket(density))/4)"
    }

    /// Chooses and installs the sparse path on `network`'s masked convolutions, for batches of
    /// `batchSize` `height`×`width` images. `fixed` (the layers a resumed run chose before)
    /// replaces the measurement in `auto` mode, so a resumed run computes exactly what it did.
    /// `cache` keeps the verdicts (nil: measure in this process and keep nothing). Returns nil,
    /// and changes nothing, when the network carries no mask.
    public static func install(on network: ResNet18, batchSize: Int, height: Int, width: Int, mode: Mode,
                               fixed: [String]? = nil, cache: URL? = cacheURL) throws(ModelError) -> SparseChoice? {
        // Each mask is counted once (a scan of every weight).
        let layers = network.convolutionInputs(height: height, width: width).filter { $0.conv.weight.mask != nil }
            .map { conv, h, w in (conv: conv, height: h, width: w, density: conv.weight.density) }
        guard !layers.isEmpty else { return nil }
        var verdicts: [String: Verdict] = [:]
        if mode == .auto && fixed == nil {
            let measured = layers.compactMap { conv, h, w, density -> Measured? in
                density < 1 ? Measured(conv: conv, height: h, width: w, key: layerKey(conv, height: h, width: w, batch: batchSize, density: density)) : nil
            }
            verdicts = try self.verdicts(for: measured, batch: batchSize, cache: cache)
        }
        var choices: [SparseChoice.Layer] = []
        for (conv, inputHeight, inputWidth, density) in layers {
            conv.sparse = nil
            let name = conv.weight.layerName
            var layer = SparseChoice.Layer(layer: name, density: density, sparse: false)
            switch mode {
            case .off:
                break
            case .on:
                layer.sparse = true
            case .auto:
                if let fixed {
                    layer.sparse = fixed.contains(name)
                } else if density < 1,
                          let verdict = verdicts[layerKey(conv, height: inputHeight, width: inputWidth, batch: batchSize, density: density)] {
                    layer.denseSeconds = verdict.denseSeconds
                    layer.sparseSeconds = verdict.sparseSeconds
                    layer.sparse = verdict.sparse
                }
            }
            if layer.sparse { conv.sparse = try SparseConvolution(conv) }
            choices.append(layer)
        }
        return SparseChoice(mode: mode, layers: choices)
    }

    /// A layer to measure, with the input extent it sees and its verdict's key.
    struct Measured {
        var conv: Conv2d, height: Int, width: Int, key: String
    }

    /// Sweeps over the layers to measure; each path keeps its fastest time over them.
    ///
    /// A verdict is cached for every later run on the machine, so one taken in a slow phase of
    /// a shared machine sticks. Such phases last seconds: in one measured on an AMD EPYC VM, a
    /// width-16 start's first layers ran 1.7× slower on both paths, the sparse path more, and
    /// stage 1's ratio fell from 1.23 to 1.02 (dense there, 1.96× instead of 2.10× for the whole
    /// step), while the last layers, measured seconds later, ran at their usual speed. A second
    /// sweep after all the others is seconds away from the first.
    static let sweeps = 2

    /// The verdicts of `layers`: read from `cache`, and those missing measured (once per key,
    /// on the first layer with that key, in `sweeps` sweeps) and added to it, all under the
    /// cache's lock so that processes starting together measure once. Without a cache,
    /// measured here.
    static func verdicts(for layers: [Measured], batch: Int, cache: URL?) throws(ModelError) -> [String: Verdict] {
        func measureMissing(_ known: VerdictFile?) throws(ModelError) -> VerdictFile {
            var result = known ?? VerdictFile()
            var missing: [Measured] = []
            for layer in layers where result.layers[layer.key] == nil && !missing.contains(where: { $0.key == layer.key }) {
                missing.append(layer)
            }
            for _ in 0..<sweeps {
                for layer in missing {
                    let verdict = try measure(layer.conv, batch: batch, height: layer.height, width: layer.width)
                    result.layers[layer.key] = result.layers[layer.key].map { $0.fastest(with: verdict) } ?? verdict
                }
            }
            return result
        }
        guard let cache else { return try measureMissing(nil).layers }
        return try MeasurementCache<VerdictFile>(url: cache, format: .readable).answer(
            usable: { file in layers.allSatisfy { file.layers[$0.key] != nil } }, measure: measureMissing).layers
    }

    /// Times forward + backward passes of `conv` (which must carry a mask) dense and sparse on
    /// random data, in rounds (`LayerProbe.time`); keeps each path's fastest.
    static func measure(_ conv: Conv2d, batch: Int, height: Int, width: Int) throws(ModelError) -> Verdict {
        let sparsePath = try SparseConvolution(conv)
        defer { conv.sparse = nil }
        // Variant 0 dense, 1 sparse.
        let timings = LayerProbe(conv, batch: batch, height: height, width: width)
            .time(variants: 2, rounds: maximumRounds, agreement: agreement) { conv.sparse = $0 == 1 ? sparsePath : nil }
        return Verdict(denseSeconds: timings.seconds[0], sparseSeconds: timings.seconds[1], agreed: timings.agreed,
                       measuredAt: Date(), othersBusyShare: timings.othersBusyShare)
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
