import Foundation

/// Chooses, per layer shape, whether evaluation runs a wide convolution on
/// `DirectConvolution` (the following BatchNorm and ReLU or residual sum in the kernel's
/// epilogue) or keeps training's im2col + GEMM and a BatchNorm pass, by timing both on this
/// machine when a CPU training starts.
///
/// Training runs layers wider than `Conv2d.directChannelLimit` through GEMM: the direct
/// kernels' summation order moved width 64's gradients past their float64 bound. Evaluation
/// computes no gradient, and on an Intel Xeon (Cooper Lake, 2 cores, width 64) running every
/// such layer direct evaluated 1.1–1.3× faster, but not every layer gains on every CPU. So each
/// 3×3 layer that the direct kernels cover and training does not run direct is timed, one
/// evaluation pass on random data each way, and goes direct where that is `requiredGain` times
/// faster. Width 16's layers already run direct and have nothing to choose.
///
/// Evaluation only reports (loss, accuracy); the weights never depend on it. The verdicts are
/// still kept per machine (`MeasurementCache`) and a resumed run keeps its checkpoint's, so that
/// a run and its resume evaluate alike. `PRUNESWEEP_EVALUATION_DIRECT=on` or `off` sends every
/// such layer one way.
public enum EvaluationRouteSelection {
    /// The override: `on` (every covered layer direct), `off` (none) or `auto` (measure; the default).
    public static let variable = "PRUNESWEEP_EVALUATION_DIRECT"
    /// How much faster the direct pass must be to be chosen.
    public static let requiredGain = 1.05
    /// How closely each route's two fastest timings must agree before measuring stops.
    public static let agreement = 0.1
    /// Rounds (one pass per route each) at most, when timings keep disagreeing.
    static let maximumRounds = 4

    /// One layer shape's measurement, as the cache keeps it.
    public struct Verdict: Codable, Sendable, Equatable {
        /// The fastest evaluation pass in seconds: im2col + GEMM and a BatchNorm pass, and direct with the BatchNorm fused.
        public var gemmSeconds: Double, directSeconds: Double
        /// Whether each route's two fastest timings agreed within `agreement`.
        public var agreed: Bool
        /// When it was measured, and the share of the CPUs other processes used meanwhile (0…1).
        public var measuredAt: Date, othersBusyShare: Double

        /// Whether such a layer evaluates direct.
        public var direct: Bool { gemmSeconds >= requiredGain * directSeconds }
        /// How much faster the direct pass is than GEMM's (below 1: slower).
        public var gain: Double { directSeconds > 0 ? gemmSeconds / directSeconds : 1 }
    }

    /// The cache file's content: verdicts by `layerKey`.
    typealias VerdictFile = LayerVerdicts<Verdict>

    /// What a verdict holds for: the convolution's shape, its input extent, its column-chunk budget, the direct level and the batch.
    static func layerKey(_ conv: Conv2d, height: Int, width: Int, batch: Int) -> String {
        let mebibytes = (conv.columnChunkElements * MemoryLayout<Float>.stride) >> 20
        return "\(conv.inChannels)>\(conv.outChannels) k\(conv.kernel) s\(conv.stride) \(height)x\(width) chunks \(mebibytes) MiB direct level \(conv.directLevel) batch \(batch)"
    }

    /// The machine's verdict file: one per CPU model, BLAS build and kernel family, GEMM
    /// routing, direct-convolution level and thread counts.
    public static var cacheURL: URL {
        UserCache.file("evaluation-routes", key: [BLASCoreSelection.cpuModel, BLAS.configuration, BLAS.engineSummary,
                                                  "direct level \(Conv2d.availableDirectLevel)", "threads \(BLAS.threads) \(Parallel.threads)"])
    }

    /// The convolutions of `network` with a choice on `height`×`width` images: those the direct
    /// kernels cover and training runs through GEMM. (A layer on the sparse path evaluates
    /// sparse whatever its route says.)
    static func candidates(_ network: ResNet18, height: Int, width: Int) -> [(conv: Conv2d, height: Int, width: Int)] {
        network.convolutionInputs(height: height, width: width).filter { conv, _, w in
            conv.runsDirectForward(width: w) && !conv.runsDirect(width: w)
        }
    }

    /// Sets the evaluation route of `network`'s convolutions for batches of `batch`
    /// `height`×`width` images and returns the layers that evaluate direct, by name in layer
    /// order, with the log line (nil when no layer has a choice). `fixed` (a resumed run's
    /// record) replaces the measurement; `cache` keeps the verdicts (nil: measure here and keep
    /// nothing). Run it after the column chunks are set: the GEMM route is timed with them.
    public static func install(on network: ResNet18, batch: Int, height: Int, width: Int, fixed: [String]? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment,
                               cache: URL? = cacheURL) throws(ModelError) -> (directLayers: [String], line: String?) {
        for conv in network.convolutions { conv.evaluatesDirect = false }
        let layers = candidates(network, height: height, width: width)
        guard !layers.isEmpty else { return ([], nil) }
        func route(_ chosen: (Conv2d) -> Bool) -> [String] {
            for (conv, _, _) in layers { conv.evaluatesDirect = chosen(conv) }
            return layers.filter { $0.conv.evaluatesDirect }.map { $0.conv.weight.layerName }
        }
        let summary = "\(layers.count) wide layer(s)"
        if let fixed {
            let direct = route { fixed.contains($0.weight.layerName) }
            return (direct, "evaluation: \(direct.count) of \(summary) direct (as the run started)")
        }
        switch environment[variable]?.lowercased() {
        case nil, "", "auto": break
        case "on": return (route { _ in true }, "evaluation: all \(summary) direct (\(variable)=on)")
        case "off": return (route { _ in false }, "evaluation: all \(summary) through im2col + GEMM (\(variable)=off)")
        case let text?:
            throw .invalidConfiguration("\(variable)=\(text) is not one of on, off, auto; unset it to let each layer's measured speed choose")
        }
        let measured = layers.map { conv, h, w in (conv: conv, height: h, width: w, key: layerKey(conv, height: h, width: w, batch: batch)) }
        let (verdicts, when) = VerdictFile.answer(keys: measured.map(\.key), cache: cache) { index in
            measure(measured[index].conv, batch: batch, height: measured[index].height, width: measured[index].width)
        }
        let direct = route { conv in measured.first { $0.conv === conv }.flatMap { verdicts[$0.key] }?.direct ?? false }
        var listed = Set<String>(), parts: [String] = []
        for key in measured.map(\.key) where listed.insert(key).inserted {
            guard let verdict = verdicts[key] else { continue }
            let shape = key.components(separatedBy: " chunks").first ?? key
            parts.append("\(shape) \(verdict.direct ? "direct" : "GEMM") (\(String(format: "%.2f", verdict.gain))×)")
        }
        let unsettled = verdicts.values.contains { !$0.agreed } ? "; some timings disagreed (a busy machine)" : ""
        return (direct, "evaluation: \(direct.count) of \(summary) direct (batch \(batch); \(when); direct ÷ GEMM speed): \(parts.joined(separator: ", "))\(unsettled)")
    }

    /// Times an evaluation pass of `conv` (with a BatchNorm and ReLU) through GEMM and direct,
    /// in rounds (`LayerProbe.time`), off the sparse path. The layer is left as found.
    static func measure(_ conv: Conv2d, batch: Int, height: Int, width: Int) -> Verdict {
        let kept = (conv.evaluatesDirect, conv.sparse)
        conv.sparse = nil
        defer { (conv.evaluatesDirect, conv.sparse) = kept }
        let timings = LayerProbe(conv, batch: batch, height: height, width: width, evaluation: true)
            .time(variants: 2, rounds: maximumRounds, agreement: agreement) { conv.evaluatesDirect = $0 == 1 }
        return Verdict(gemmSeconds: timings.seconds[0], directSeconds: timings.seconds[1], agreed: timings.agreed,
                       measuredAt: Date(), othersBusyShare: timings.othersBusyShare)
    }
}
