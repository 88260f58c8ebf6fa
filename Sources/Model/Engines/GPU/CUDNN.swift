/// cuDNN 9 (`libcudnn.so.9`), its legacy convolution and BatchNorm API: the functions below are
/// exported by the main library (the shim that loads the sub-libraries). The heuristic
/// queries, workspace sizes and destroy calls were added from NVIDIA's API reference and have
/// not run on a GPU yet (docs/gpu.md).
public final class CUDNN: @unchecked Sendable {
    typealias Status = Int32
    typealias Handle = OpaquePointer?
    typealias Descriptor = OpaquePointer?
    typealias Pointer = UInt64

    let library: DynamicLibrary
    let cudnnGetVersion: @convention(c) () -> Int
    let cudnnCreate: @convention(c) (UnsafeMutablePointer<Handle>) -> Status
    let cudnnSetStream: @convention(c) (Handle, OpaquePointer?) -> Status
    let cudnnGetErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?
    let cudnnCreateTensorDescriptor: @convention(c) (UnsafeMutablePointer<Descriptor>) -> Status
    let cudnnSetTensor4dDescriptor: @convention(c) (Descriptor, Int32, Int32, Int32, Int32, Int32, Int32) -> Status
    let cudnnCreateFilterDescriptor: @convention(c) (UnsafeMutablePointer<Descriptor>) -> Status
    let cudnnSetFilter4dDescriptor: @convention(c) (Descriptor, Int32, Int32, Int32, Int32, Int32, Int32) -> Status
    let cudnnCreateConvolutionDescriptor: @convention(c) (UnsafeMutablePointer<Descriptor>) -> Status
    let cudnnSetConvolution2dDescriptor: @convention(c) (Descriptor, Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32) -> Status
    let cudnnSetConvolutionMathType: @convention(c) (Descriptor, Int32) -> Status
    let cudnnDestroy: @convention(c) (Handle) -> Status
    let cudnnDestroyTensorDescriptor: @convention(c) (Descriptor) -> Status
    let cudnnDestroyFilterDescriptor: @convention(c) (Descriptor) -> Status
    let cudnnDestroyConvolutionDescriptor: @convention(c) (Descriptor) -> Status
    /// The heuristic queries (no timing, no kernels run): forward (x, w, conv, y), backward
    /// data (w, dy, conv, dx), backward filter (x, dy, conv, dw); each fills up to the requested
    /// number of perf structs in cuDNN's expected-speed order.
    let cudnnGetConvolutionForwardAlgorithm_v7: @convention(c) (Handle, Descriptor, Descriptor, Descriptor, Descriptor, Int32,
                                                                 UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer) -> Status
    let cudnnGetConvolutionBackwardDataAlgorithm_v7: @convention(c) (Handle, Descriptor, Descriptor, Descriptor, Descriptor, Int32,
                                                                      UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer) -> Status
    let cudnnGetConvolutionBackwardFilterAlgorithm_v7: @convention(c) (Handle, Descriptor, Descriptor, Descriptor, Descriptor, Int32,
                                                                        UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer) -> Status
    /// The workspace one algorithm needs, in the same descriptor order as the queries above.
    let cudnnGetConvolutionForwardWorkspaceSize: @convention(c) (Handle, Descriptor, Descriptor, Descriptor, Descriptor, Int32,
                                                                  UnsafeMutablePointer<Int>) -> Status
    let cudnnGetConvolutionBackwardDataWorkspaceSize: @convention(c) (Handle, Descriptor, Descriptor, Descriptor, Descriptor, Int32,
                                                                       UnsafeMutablePointer<Int>) -> Status
    let cudnnGetConvolutionBackwardFilterWorkspaceSize: @convention(c) (Handle, Descriptor, Descriptor, Descriptor, Descriptor, Int32,
                                                                         UnsafeMutablePointer<Int>) -> Status
    let cudnnConvolutionForward: @convention(c) (Handle, UnsafeRawPointer, Descriptor, Pointer, Descriptor, Pointer, Descriptor, Int32,
                                                  Pointer, Int, UnsafeRawPointer, Descriptor, Pointer) -> Status
    let cudnnConvolutionBackwardData: @convention(c) (Handle, UnsafeRawPointer, Descriptor, Pointer, Descriptor, Pointer, Descriptor, Int32,
                                                       Pointer, Int, UnsafeRawPointer, Descriptor, Pointer) -> Status
    let cudnnConvolutionBackwardFilter: @convention(c) (Handle, UnsafeRawPointer, Descriptor, Pointer, Descriptor, Pointer, Descriptor, Int32,
                                                         Pointer, Int, UnsafeRawPointer, Descriptor, Pointer) -> Status
    let cudnnDeriveBNTensorDescriptor: @convention(c) (Descriptor, Descriptor, Int32) -> Status
    let cudnnBatchNormalizationForwardTraining: @convention(c) (Handle, Int32, UnsafeRawPointer, UnsafeRawPointer, Descriptor, Pointer, Descriptor, Pointer,
                                                                 Descriptor, Pointer, Pointer, Double, Pointer, Pointer, Double, Pointer, Pointer) -> Status
    let cudnnBatchNormalizationForwardInference: @convention(c) (Handle, Int32, UnsafeRawPointer, UnsafeRawPointer, Descriptor, Pointer, Descriptor, Pointer,
                                                                  Descriptor, Pointer, Pointer, Pointer, Pointer, Double) -> Status
    let cudnnBatchNormalizationBackward: @convention(c) (Handle, Int32, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer,
                                                          Descriptor, Pointer, Descriptor, Pointer, Descriptor, Pointer,
                                                          Descriptor, Pointer, Pointer, Pointer, Double, Pointer, Pointer) -> Status

    /// Enum values from the cuDNN documentation.
    enum Constant {
        static let formatNCHW: Int32 = 0
        static let dataFloat: Int32 = 0
        static let crossCorrelation: Int32 = 1
        static let batchNormSpatial: Int32 = 1
        static let mathDefault: Int32 = 0, mathTensorOp: Int32 = 1, mathTensorOpAllowConversion: Int32 = 2, mathFMA: Int32 = 3
        static let deterministic: Int32 = 1
    }

    /// The version as cuDNN reports it, e.g. 91400 for 9.14.0.
    public var version: Int { cudnnGetVersion() }

    init() throws(GPUError) {
        library = try DynamicLibrary("cuDNN", sonames: ["libcudnn.so.9"], pythonWheels: true)
        cudnnGetVersion = try library.function("cudnnGetVersion")
        cudnnCreate = try library.function("cudnnCreate")
        cudnnSetStream = try library.function("cudnnSetStream")
        cudnnGetErrorString = try library.function("cudnnGetErrorString")
        cudnnCreateTensorDescriptor = try library.function("cudnnCreateTensorDescriptor")
        cudnnSetTensor4dDescriptor = try library.function("cudnnSetTensor4dDescriptor")
        cudnnCreateFilterDescriptor = try library.function("cudnnCreateFilterDescriptor")
        cudnnSetFilter4dDescriptor = try library.function("cudnnSetFilter4dDescriptor")
        cudnnCreateConvolutionDescriptor = try library.function("cudnnCreateConvolutionDescriptor")
        cudnnSetConvolution2dDescriptor = try library.function("cudnnSetConvolution2dDescriptor")
        cudnnSetConvolutionMathType = try library.function("cudnnSetConvolutionMathType")
        cudnnDestroy = try library.function("cudnnDestroy")
        cudnnDestroyTensorDescriptor = try library.function("cudnnDestroyTensorDescriptor")
        cudnnDestroyFilterDescriptor = try library.function("cudnnDestroyFilterDescriptor")
        cudnnDestroyConvolutionDescriptor = try library.function("cudnnDestroyConvolutionDescriptor")
        cudnnGetConvolutionForwardAlgorithm_v7 = try library.function("cudnnGetConvolutionForwardAlgorithm_v7")
        cudnnGetConvolutionBackwardDataAlgorithm_v7 = try library.function("cudnnGetConvolutionBackwardDataAlgorithm_v7")
        cudnnGetConvolutionBackwardFilterAlgorithm_v7 = try library.function("cudnnGetConvolutionBackwardFilterAlgorithm_v7")
        cudnnGetConvolutionForwardWorkspaceSize = try library.function("cudnnGetConvolutionForwardWorkspaceSize")
        cudnnGetConvolutionBackwardDataWorkspaceSize = try library.function("cudnnGetConvolutionBackwardDataWorkspaceSize")
        cudnnGetConvolutionBackwardFilterWorkspaceSize = try library.function("cudnnGetConvolutionBackwardFilterWorkspaceSize")
        cudnnConvolutionForward = try library.function("cudnnConvolutionForward")
        cudnnConvolutionBackwardData = try library.function("cudnnConvolutionBackwardData")
        cudnnConvolutionBackwardFilter = try library.function("cudnnConvolutionBackwardFilter")
        cudnnDeriveBNTensorDescriptor = try library.function("cudnnDeriveBNTensorDescriptor")
        cudnnBatchNormalizationForwardTraining = try library.function("cudnnBatchNormalizationForwardTraining")
        cudnnBatchNormalizationForwardInference = try library.function("cudnnBatchNormalizationForwardInference")
        cudnnBatchNormalizationBackward = try library.function("cudnnBatchNormalizationBackward")
    }

    func check(_ status: Status, _ function: String) throws(GPUError) {
        guard status != 0 else { return }
        let message = cudnnGetErrorString(status).map { String(cString: $0) } ?? "cudnnStatus_t \(status)"
        throw .call(api: "cuDNN", function: function, status: status, message: message)
    }

    /// One entry of a `cudnnGet…Algorithm_v7` result (the three perf structs share this
    /// layout: algo, status, time, memory, determinism, mathType, reserved[3]).
    struct Performance: Equatable {
        var algorithm: Int32, status: Int32, milliseconds: Float, memory: Int, deterministic: Bool, mathType: Int32

        init(algorithm: Int32, status: Int32 = 0, milliseconds: Float = -1, memory: Int, deterministic: Bool, mathType: Int32) {
            self.algorithm = algorithm
            self.status = status
            self.milliseconds = milliseconds
            self.memory = memory
            self.deterministic = deterministic
            self.mathType = mathType
        }

        /// Bytes per result struct: 3 × 4 bytes, padding to 8, size_t, 5 × 4 bytes, padding.
        static let stride = 48

        init(reading base: UnsafeRawPointer) {
            algorithm = base.loadUnaligned(fromByteOffset: 0, as: Int32.self)
            status = base.loadUnaligned(fromByteOffset: 4, as: Int32.self)
            milliseconds = base.loadUnaligned(fromByteOffset: 8, as: Float.self)
            memory = base.loadUnaligned(fromByteOffset: 16, as: Int.self)
            deterministic = base.loadUnaligned(fromByteOffset: 24, as: Int32.self) == Constant.deterministic
            mathType = base.loadUnaligned(fromByteOffset: 28, as: Int32.self)
        }
    }
}
