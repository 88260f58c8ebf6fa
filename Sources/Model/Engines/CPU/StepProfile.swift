import Dispatch
import Synchronization

/// Where a CPU training step spends its time, by kind of work: `worker bench` switches it on
/// and prints one line per part beside PyTorch's profile of the same step
/// (`scripts/torch_bench.py --profile`). Off, each measured region costs one relaxed atomic
/// load; the layers record only from the thread that runs the step, never from inside the
/// parallel loops.
public enum StepProfile {
    /// A kind of work, in the order a step meets it. The names are the ones
    /// `scripts/torch_bench.py` maps PyTorch's operators onto.
    public enum Part: Int, CaseIterable, Sendable {
        case batchAssembly, convolutionForward, im2col, batchNormForward, poolAndClassifier, loss
        case residualBackward, batchNormBackward, convolutionWeightGradient, convolutionInputGradient, col2im, sgd
        case sparseForward, sparseBackward

        /// The part in words.
        public var name: String {
            switch self {
            case .batchAssembly: "batch assembly (crop, flip, normalise)"
            case .convolutionForward: "convolution forward (GEMM or direct)"
            case .im2col: "im2col and kernel flips"
            case .batchNormForward: "BatchNorm forward (+ReLU, +residual)"
            case .poolAndClassifier: "pooling and classifier, both directions"
            case .loss: "loss"
            case .residualBackward: "residual ReLU gradient"
            case .batchNormBackward: "BatchNorm backward (+ReLU gate)"
            case .convolutionWeightGradient: "convolution weight gradient (GEMM)"
            case .convolutionInputGradient: "convolution input gradient (GEMM or direct)"
            case .col2im: "col2im"
            case .sgd: "SGD"
            case .sparseForward: "sparse convolution forward (copies, gather)"
            case .sparseBackward: "sparse convolution backward (copies, both gradients)"
            }
        }

        /// Whether the part is the sparse engine's (`worker bench --density` shows them beside
        /// the dense engine's parts; PyTorch has none).
        public var isSparse: Bool { self == .sparseForward || self == .sparseBackward }

        /// Whether the part is the convolutions' own arithmetic (GEMM or direct); the rest is the
        /// work around it.
        public var isConvolutionArithmetic: Bool {
            [.convolutionForward, .convolutionWeightGradient, .convolutionInputGradient, .sparseForward, .sparseBackward].contains(self)
        }
    }

    private static let enabled = Atomic<Bool>(false)
    private static let totals = Mutex([UInt64](repeating: 0, count: Part.allCases.count))

    /// Starts recording from zero.
    public static func start() {
        totals.withLock { $0 = [UInt64](repeating: 0, count: Part.allCases.count) }
        enabled.store(true, ordering: .relaxed)
    }

    /// Stops recording and returns the seconds spent in each part since `start()`.
    public static func stop() -> [Part: Double] {
        enabled.store(false, ordering: .relaxed)
        let nanoseconds = totals.withLock { $0 }
        return Dictionary(uniqueKeysWithValues: Part.allCases.map { ($0, Double(nanoseconds[$0.rawValue]) / 1e9) })
    }

    /// Runs `body`, adding its wall time to `part` while recording.
    @inline(__always)
    public static func measure<T>(_ part: Part, _ body: () -> T) -> T {
        guard enabled.load(ordering: .relaxed) else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        totals.withLock { $0[part.rawValue] += elapsed }
        return result
    }
}
