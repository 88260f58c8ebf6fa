/// cuBLAS (`libcublas.so.13` or `.12`): the classifier's products. Column-major, as cuBLAS is;
/// `GPUNetwork` maps PyTorch's row-major `[N, F]` activations onto it.
public final class CUBLAS: @unchecked Sendable {
    typealias Status = Int32
    typealias Handle = OpaquePointer?

    let library: DynamicLibrary
    let cublasCreate: @convention(c) (UnsafeMutablePointer<Handle>) -> Status
    let cublasSetStream: @convention(c) (Handle, OpaquePointer?) -> Status
    let cublasSetMathMode: @convention(c) (Handle, Int32) -> Status
    let cublasSetWorkspace: @convention(c) (Handle, UnsafeMutableRawPointer?, Int) -> Status
    let cublasGetVersion: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Status
    let cublasSgemm: @convention(c) (Handle, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>, UInt64, Int32,
                                     UInt64, Int32, UnsafePointer<Float>, UInt64, Int32) -> Status

    /// cublasMath_t: plain fp32, or TF32 tensor cores.
    enum MathMode: Int32 { case `default` = 0, tf32 = 3 }
    /// cublasOperation_t.
    enum Operation: Int32 { case none = 0, transpose = 1 }

    init() throws(GPUError) {
        library = try DynamicLibrary("cuBLAS", sonames: ["libcublas.so.13", "libcublas.so.12"], pythonWheels: true)
        cublasCreate = try library.function("cublasCreate_v2")
        cublasSetStream = try library.function("cublasSetStream_v2")
        cublasSetMathMode = try library.function("cublasSetMathMode")
        cublasSetWorkspace = try library.function("cublasSetWorkspace_v2")
        cublasGetVersion = try library.function("cublasGetVersion_v2")
        cublasSgemm = try library.function("cublasSgemm_v2")
    }

    func check(_ status: Status, _ function: String) throws(GPUError) {
        guard status != 0 else { return }
        throw .call(api: "cuBLAS", function: function, status: status, message: "cublasStatus_t \(status)")
    }
}
