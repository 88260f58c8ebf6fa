import Foundation

/// oneDNN's single-precision GEMM (`dnnl_sgemm`), a second engine beside OpenBLAS.
///
/// oneDNN generates its kernels for the CPU it runs on (AVX2, AVX-512, AMX hosts alike), which
/// is where OpenBLAS 0.3.21 falls short on Intel server CPUs. It is opened at run time, so the
/// package builds and runs without it; `GEMMEngineSelection` decides per product kind whether
/// it is used. Debian and Ubuntu ship it as `libdnnl2` (oneDNN 2.x) or `libdnnl3`.
public final class OneDNN: Sendable {
    private typealias SGEMM = @convention(c) (
        CChar, CChar, Int64, Int64, Int64, Float, UnsafePointer<Float>?, Int64,
        UnsafePointer<Float>?, Int64, Float, UnsafeMutablePointer<Float>?, Int64) -> Int32
    private typealias SetThreads = @convention(c) (Int32) -> Void
    /// Returns a `dnnl_version_t`, which begins with its major, minor and patch numbers (C ints).
    private typealias Version = @convention(c) () -> UnsafeRawPointer?

    /// The library, or nil where it is not installed (or `PRUNESWEEP_GEMM_ENGINE=openblas`
    /// forbids loading it).
    public static let shared: OneDNN? = {
        guard ProcessInfo.processInfo.environment[GEMMEngineSelection.variable]?.lowercased() != BLAS.Engine.openBLAS.rawValue else { return nil }
        return try? OneDNN()
    }()

    /// "oneDNN 2.6.3".
    public let version: String
    /// "oneDNN 2.6.3 (libdnnl.so.2)".
    public let description: String
    private let sgemmFunction: SGEMM
    private let setThreads: SetThreads

    private init() throws(GPUError) {
        // oneDNN's OpenMP threads would otherwise spin after each product on the cores that
        // OpenBLAS and the element-wise loops need next; libgomp reads this when it loads.
        if ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"] == nil { setenv("OMP_WAIT_POLICY", "PASSIVE", 1) }
        let library = try DynamicLibrary("oneDNN", sonames: ["libdnnl.so.3", "libdnnl.so.2"])
        sgemmFunction = try library.function("dnnl_sgemm")
        let readVersion: Version = try library.function("dnnl_version")
        guard let openMP = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_set_num_threads") else {
            throw .symbolMissing(symbol: "omp_set_num_threads", library: "libgomp (oneDNN's OpenMP runtime)")
        }
        setThreads = unsafeBitCast(openMP, to: SetThreads.self)
        let number = readVersion().map { record in (0..<3).map { String(record.load(fromByteOffset: 4 * $0, as: Int32.self)) }.joined(separator: ".") }
        version = "oneDNN \(number ?? "?")"
        description = "\(version) (\(library.loadedName))"
    }

    private static func letter(_ transpose: BLAS.Transpose) -> CChar {
        CChar(UInt8(ascii: transpose == .none ? "N" : "T"))
    }

    /// `C ← alpha·op(A)·op(B) + beta·C`, row-major, as `BLAS.gemm` defines it.
    @inline(__always)
    func sgemm(_ transA: BLAS.Transpose, _ transB: BLAS.Transpose, m: Int, n: Int, k: Int,
               alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        // OpenMP keeps its thread count per calling thread, so `BLAS.threads` is applied
        // before each product rather than once.
        setThreads(Int32(BLAS.threads))
        let status = sgemmFunction(Self.letter(transA), Self.letter(transB), Int64(m), Int64(n), Int64(k),
                                   alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        // dnnl_sgemm fails only on arguments no caller may pass (negative sizes, short leading
        // dimensions): a bug in the caller, not a condition to recover from.
        precondition(status == 0, "dnnl_sgemm(\(m)×\(n)×\(k), lda \(lda), ldb \(ldb), ldc \(ldc)) failed with oneDNN status \(status)")
    }
}
