import CBLAS
import Foundation
import Synchronization

/// The one door to the linear-algebra engine. Every matrix product in the model goes through
/// `gemm`, so switching from OpenBLAS to another engine means changing this file alone.
public enum BLAS {
    /// Whether a matrix operand is used as stored or transposed.
    public enum Transpose: Sendable {
        case none, transpose
        var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    }

    /// `C ← alpha·op(A)·op(B) + beta·C` for row-major float32 matrices, where op(A) is m×k,
    /// op(B) is k×n and C is m×n, with leading dimensions `lda`, `ldb`, `ldc`.
    @inline(__always)
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let start = DispatchTime.now().uptimeNanoseconds
        cblas_sgemm(
            CblasRowMajor, transA.cblas, transB.cblas,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        accounting.add(elapsed, ordering: .relaxed)
        flopAccounting.add(UInt64(2 * m * n * k), ordering: .relaxed)
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

    private static let accounting = Atomic<UInt64>(0)
    private static let flopAccounting = Atomic<UInt64>(0)

    /// Seconds spent inside `gemm` and floating-point operations it performed since the last
    /// reset: the benchmark's split of where training time goes.
    public static var usage: (seconds: Double, flops: Double) {
        (Double(accounting.load(ordering: .relaxed)) / 1e9, Double(flopAccounting.load(ordering: .relaxed)))
    }

    /// Zeroes `usage`.
    public static func resetUsage() {
        accounting.store(0, ordering: .relaxed)
        flopAccounting.store(0, ordering: .relaxed)
    }

    /// The number of threads the engine uses for one product.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// The kernel family the engine selected for this CPU (OpenBLAS's core name, e.g. "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// The engine and kernel family every single-precision product runs on, for reports.
    public static var engineDescription: String { "OpenBLAS sgemm, core \(coreName)" }

    /// The engine's build description (version and options).
    public static var configuration: String { String(cString: openblas_get_config()) }
}
