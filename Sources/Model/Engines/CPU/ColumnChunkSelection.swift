import Foundation

/// Chooses how many column-matrix elements one chunk of a wide convolution holds, per layer
/// shape, by timing the candidates on this machine when a CPU training starts.
///
/// A chunk that stays in the caches between im2col and GEMM saves a trip to memory; a longer
/// one gives the GEMM longer products. Which wins depends on the CPU: on an AMD EPYC (Zen, 2
/// threads, width 64) 8 MiB chunks trained at 0.88× the 64 MiB ones, on an Intel Xeon (Cooper
/// Lake, 2 cores) 16 MiB ones were faster (docs/model.md). Narrow layers keep their 2 MiB
/// chunks; each wide layer that builds columns is timed, one forward + backward pass on random
/// data per candidate budget, and keeps `defaultMebibytes` unless another budget is at least
/// `requiredGain` times faster.
///
/// The chunks decide the weight gradient's summation order, and so a run's bits: like the GEMM
/// routing and the sparse verdicts, the answer is measured once per machine under a file lock
/// and kept in the user cache (`MeasurementCache`), and a resumed run keeps the budgets its
/// checkpoint recorded. `PRUNESWEEP_COLUMN_CHUNK_MIB=N` gives every wide layer N MiB instead.
public enum ColumnChunkSelection {
    /// The override: a budget in MiB for every wide layer.
    public static let variable = "PRUNESWEEP_COLUMN_CHUNK_MIB"
    /// The budgets timed, in MiB.
    public static let candidates = [8, 16, 32, 64]
    /// The budget a layer keeps unless another is measured clearly faster (`Conv2d.defaultColumnChunkElements`).
    public static let defaultMebibytes = (Conv2d.defaultColumnChunkElements * MemoryLayout<Float>.stride) >> 20
    /// How much faster than `defaultMebibytes` another budget must be to be chosen.
    public static let requiredGain = 1.05
    /// How closely each budget's two fastest timings must agree before measuring stops.
    public static let agreement = 0.1
    /// Rounds (one pass per budget each) at most, when timings keep disagreeing.
    static let maximumRounds = 4

    /// One layer shape's measurement, as the cache keeps it.
    public struct Verdict: Codable, Sendable, Equatable {
        /// The budgets timed (MiB; one per distinct chunking) and each one's fastest pass in seconds.
        public var mebibytes: [Int], seconds: [Double]
        /// Whether each budget's two fastest timings agreed within `agreement`.
        public var agreed: Bool
        /// When it was measured, and the share of the CPUs other processes used meanwhile (0…1).
        public var measuredAt: Date, othersBusyShare: Double

        /// The budget such a layer uses: the fastest, where it beats the default budget's pass
        /// by `requiredGain`.
        public var chosen: Int {
            guard let fastest = zip(mebibytes, seconds).min(by: { $0.1 < $1.1 }),
                  let standard = zip(mebibytes, seconds).first(where: { $0.0 == defaultMebibytes }) else { return defaultMebibytes }
            return standard.1 >= requiredGain * fastest.1 ? fastest.0 : defaultMebibytes
        }

        /// How much faster the chosen budget's pass is than the default's.
        public var gain: Double {
            guard let standard = zip(mebibytes, seconds).first(where: { $0.0 == defaultMebibytes }),
                  let chosen = zip(mebibytes, seconds).first(where: { $0.0 == self.chosen }), chosen.1 > 0 else { return 1 }
            return standard.1 / chosen.1
        }
    }

    /// The cache file's content: verdicts by `layerKey`.
    typealias VerdictFile = LayerVerdicts<Verdict>

    /// What a verdict holds for: the convolution's shape, its input extent, which of its passes run direct and the batch.
    static func layerKey(_ conv: Conv2d, height: Int, width: Int, batch: Int) -> String {
        "\(conv.inChannels)>\(conv.outChannels) k\(conv.kernel) s\(conv.stride) p\(conv.padding) \(height)x\(width) direct level \(conv.directLevel) batch \(batch)"
    }

    /// The machine's verdict file: one per CPU model, BLAS build and kernel family, GEMM
    /// routing, direct-convolution level and thread counts.
    public static var cacheURL: URL {
        UserCache.file("column-chunks", key: [BLASCoreSelection.cpuModel, BLAS.configuration, BLAS.engineSummary,
                                              "direct level \(Conv2d.availableDirectLevel)", "threads \(BLAS.threads) \(Parallel.threads)"])
    }

    /// The distinct budgets in `candidates` that cut `batch` images of `conv` on inputs
    /// `height`×`width` into different numbers of chunks (the largest budget of each number):
    /// budgets that chunk alike compute alike.
    static func distinctBudgets(_ conv: Conv2d, batch: Int, height: Int, width: Int) -> [Int] {
        let perImage = conv.inChannels * conv.kernel * conv.kernel * conv.outputExtent(height) * conv.outputExtent(width)
        var seen = Set<Int>(), budgets: [Int] = []
        for mebibytes in candidates.sorted(by: >) {
            let count = ImageChunks(batch: batch, elementsPerImage: perImage, budget: elements(mebibytes)).count
            if seen.insert(count).inserted { budgets.append(mebibytes) }
        }
        return budgets.sorted()
    }

    static func elements(_ mebibytes: Int) -> Int { (mebibytes << 20) / MemoryLayout<Float>.stride }

    /// Sets the chunk budget of `network`'s wide convolutions for batches of `batch`
    /// `height`×`width` images and returns each changed layer's budget in MiB by name (empty:
    /// every one keeps the default), with the log line (nil when no layer has a choice).
    /// `fixed` (a resumed run's record) replaces the measurement; `cache` keeps the verdicts
    /// (nil: measure here and keep nothing).
    public static func install(on network: ResNet18, batch: Int, height: Int, width: Int, fixed: [String: Int]? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment,
                               cache: URL? = cacheURL) throws(ModelError) -> (budgets: [String: Int], line: String?) {
        let layers = network.convolutionInputs(height: height, width: width).filter { conv, h, w in
            !conv.isNarrow && conv.buildsColumnChunks(width: w) && distinctBudgets(conv, batch: batch, height: h, width: w).count > 1
        }
        for (conv, _, _) in layers { conv.columnChunkElements = Conv2d.defaultColumnChunkElements }
        if let fixed {
            for (conv, _, _) in layers { conv.columnChunkElements = elements(fixed[conv.weight.layerName] ?? defaultMebibytes) }
            return (fixed, fixed.isEmpty ? nil : "column chunks: \(describe(fixed)) (as the run started)")
        }
        if let text = environment[variable], !text.isEmpty {
            guard let mebibytes = Int(text), mebibytes > 0 else {
                throw .invalidConfiguration("\(variable)=\(text) is not a whole number of MiB; unset it to let each layer's measured speed choose")
            }
            let budgets = Dictionary(uniqueKeysWithValues: layers.map { ($0.conv.weight.layerName, mebibytes) })
            for (conv, _, _) in layers { conv.columnChunkElements = elements(mebibytes) }
            return (budgets, layers.isEmpty ? nil : "column chunks: \(mebibytes) MiB for every wide layer (\(variable))")
        }
        guard !layers.isEmpty else { return ([:], nil) }
        let measured = layers.map { conv, h, w in (conv: conv, height: h, width: w, key: layerKey(conv, height: h, width: w, batch: batch)) }
        let (verdicts, when) = VerdictFile.answer(keys: measured.map(\.key), cache: cache) { index in
            measure(measured[index].conv, batch: batch, height: measured[index].height, width: measured[index].width)
        }
        var budgets: [String: Int] = [:], parts: [String] = []
        for layer in measured {
            guard let verdict = verdicts[layer.key] else { continue }
            layer.conv.columnChunkElements = elements(verdict.chosen)
            if verdict.chosen != defaultMebibytes { budgets[layer.conv.weight.layerName] = verdict.chosen }
        }
        var listed = Set<String>()
        for key in measured.map(\.key) where listed.insert(key).inserted {
            guard let verdict = verdicts[key] else { continue }
            let shape = key.components(separatedBy: " direct level").first ?? key
            parts.append(verdict.chosen == defaultMebibytes
                ? "\(shape) \(defaultMebibytes) MiB"
                : "\(shape) \(verdict.chosen) MiB (\(String(format: "%.2f", verdict.gain))× \(defaultMebibytes) MiB)")
        }
        let unsettled = verdicts.values.contains { !$0.agreed } ? "; some timings disagreed (a busy machine), kept so that every process chunks alike" : ""
        return (budgets, "column chunks per layer (batch \(batch); \(when)): \(parts.joined(separator: ", "))\(unsettled)")
    }

    /// "layer1.0.conv1 16 MiB, …", in layer order.
    static func describe(_ budgets: [String: Int]) -> String {
        budgets.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value) MiB" }.joined(separator: ", ")
    }

    /// Times a forward + backward pass of `conv` with each distinct budget, in rounds
    /// (`LayerProbe.time`); keeps each budget's fastest. The layer's budget is left as found.
    static func measure(_ conv: Conv2d, batch: Int, height: Int, width: Int) -> Verdict {
        let budgets = distinctBudgets(conv, batch: batch, height: height, width: width)
        let kept = conv.columnChunkElements
        defer { conv.columnChunkElements = kept }
        let timings = LayerProbe(conv, batch: batch, height: height, width: width)
            .time(variants: budgets.count, rounds: maximumRounds, agreement: agreement) { conv.columnChunkElements = elements(budgets[$0]) }
        return Verdict(mebibytes: budgets, seconds: timings.seconds, agreed: timings.agreed, measuredAt: Date(),
                       othersBusyShare: timings.othersBusyShare)
    }
}
