import CBLAS
import Foundation
import Synchronization

/// The one door to the linear-algebra engines. Every matrix product in the model goes through
/// `gemm`, which hands it to OpenBLAS or oneDNN by the product's kind (which operands are
/// transposed), as `GEMMEngineSelection` measured best on this CPU. The choice is fixed for
/// the process, so runs stay deterministic and resumes bit-identical.
public enum BLAS {
    /// Whether a matrix operand is used as stored or transposed.
    public enum Transpose: Sendable {
        case none, transpose
        var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    }

    /// A library that computes the products.
    public enum Engine: String, Sendable, Codable, CaseIterable {
        case openBLAS = "openblas"
        case oneDNN = "onednn"
    }

    /// A product's kind by its operands: convolution forward passes and flipped-kernel input
    /// gradients are `nn`, column input gradients `tn`, weight gradients `nt`.
    public enum Kind: Int, Sendable, Codable, CaseIterable, CustomStringConvertible {
        case nn, tn, nt, tt

        init(_ transA: Transpose, _ transB: Transpose) {
            switch (transA, transB) {
            case (.none, .none): self = .nn
            case (.transpose, .none): self = .tn
            case (.none, .transpose): self = .nt
            case (.transpose, .transpose): self = .tt
            }
        }

        public var description: String { ["A·B", "Aᵀ·B", "A·Bᵀ", "Aᵀ·Bᵀ"][rawValue] }
    }

    /// Which engine runs each kind of product; bit `kind` set means oneDNN.
    private static let routing = Atomic<UInt8>(0)

    /// The engine that runs products of `kind`.
    public static func engine(for kind: Kind) -> Engine {
        routing.load(ordering: .relaxed) & (1 << kind.rawValue) != 0 ? .oneDNN : .openBLAS
    }

    /// Routes products of `kind` to `engine`. Where oneDNN is not installed they stay on OpenBLAS.
    public static func route(_ kind: Kind, to engine: Engine) {
        let bit = UInt8(1 << kind.rawValue)
        if engine == .oneDNN, OneDNN.shared != nil {
            routing.bitwiseOr(bit, ordering: .relaxed)
        } else {
            routing.bitwiseAnd(~bit, ordering: .relaxed)
        }
    }

    /// `C ← alpha·op(A)·op(B) + beta·C` for row-major float32 matrices, where op(A) is m×k,
    /// op(B) is k×n and C is m×n, with leading dimensions `lda`, `ldb`, `ldc`; on the engine
    /// routed for its kind.
    @inline(__always)
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        gemm(on: engine(for: Kind(transA, transB)), transA, transB, m: m, n: n, k: k,
             alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// The same product on a named engine (measurements and checks); OpenBLAS where oneDNN
    /// is not installed.
    @inline(__always)
    public static func gemm(
        on engine: Engine, _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let start = DispatchTime.now().uptimeNanoseconds
        if engine == .oneDNN, let oneDNN = OneDNN.shared {
            oneDNN.sgemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        } else {
            cblas_sgemm(
                CblasRowMajor, transA.cblas, transB.cblas,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        let kind = Kind(transA, transB).rawValue
        ledger.withLock {
            $0.seconds[kind] += Double(elapsed) / 1e9
            $0.flops[kind] += 2 * Double(m) * Double(n) * Double(k)
            $0.calls[kind] += 1
        }
    }

    /// `C ← alpha·op(A)·op(B) + beta·C` in float64 (SynFlow scoring); not counted in `usage`.
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(
            CblasRowMajor, transA.cblas, transB.cblas,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Time, work and calls inside `gemm` per kind of product (indexed by `Kind.rawValue`):
    /// differences of two readings give a stretch of training's achieved GFLOP/s per kind.
    public struct Usage: Sendable, Equatable {
        public var seconds = [Double](repeating: 0, count: 4), flops = [Double](repeating: 0, count: 4)
        public var calls = [Int](repeating: 0, count: 4)

        /// All kinds together.
        public var total: (seconds: Double, flops: Double) { (seconds.reduce(0, +), flops.reduce(0, +)) }

        /// What happened between `earlier` and this reading.
        public func since(_ earlier: Usage) -> Usage {
            var difference = self
            for kind in 0..<4 {
                difference.seconds[kind] -= earlier.seconds[kind]
                difference.flops[kind] -= earlier.flops[kind]
                difference.calls[kind] -= earlier.calls[kind]
            }
            return difference
        }
    }

    /// A lock per product costs nanoseconds against products of milliseconds.
    private static let ledger = Mutex(Usage())

    /// Everything `gemm` did since the process started or `resetUsage()`.
    public static var usage: Usage { ledger.withLock { $0 } }

    /// Zeroes `usage`.
    public static func resetUsage() {
        ledger.withLock { $0 = Usage() }
    }

    /// The number of threads the engines use for one product (oneDNN reads it per product).
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// The kernel family the engine selected for this CPU (OpenBLAS's core name, e.g. "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// The kernel family and, where oneDNN computes some kinds of product, which ones: "Zen",
    /// or "Zen + oneDNN 2.6.3 for Aᵀ·B, A·Bᵀ". Run records and a worker's hello carry it.
    public static var engineSummary: String {
        let kinds = [Kind.nn, .tn, .nt].filter { engine(for: $0) == .oneDNN }
        guard !kinds.isEmpty, let oneDNN = OneDNN.shared else { return coreName }
        return "\(coreName) + \(oneDNN.version) for \(kinds.map(\.description).joined(separator: ", "))"
    }

    /// The engine's build description (version and options).
    public static var configuration: String { String(cString: openblas_get_config()) }
}
