import Foundation

/// One tiny convolution (1×1×4×4 input, 3×3 filter) run when a device opens. cuDNN 9's
/// `libcudnn.so.9` is a shim that loads its engine sub-libraries only when a convolution first
/// runs, so a host with the shim but not the engines would otherwise pass every check of
/// `--device auto` and fail at the first training step. A failure names the sub-libraries
/// missing beside the shim.
enum CUDNNProbe {
    /// What cuDNN 9 loads for the legacy convolution and BatchNorm API (`libcudnn_adv`, the
    /// RNN and attention library, is not needed).
    static let subLibraries = [
        "libcudnn_graph.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_heuristic.so.9",
        "libcudnn_engines_precompiled.so.9", "libcudnn_engines_runtime_compiled.so.9",
    ]

    /// The sub-libraries absent from `files` (the names in the shim's directory).
    static func missing(in files: [String]) -> [String] {
        let present = Set(files)
        return subLibraries.filter { !present.contains($0) }
    }

    /// The sentence that explains a failed probe: what is missing beside `shim`, or that
    /// nothing is and cuDNN still failed (then its own words are all there is).
    static func explanation(shim: String, files: [String]?, failure: String) -> String {
        let directory = (shim as NSString).deletingLastPathComponent
        guard let files else { return "\(failure); the directory of \(shim) could not be listed to look for cuDNN's sub-libraries" }
        let absent = missing(in: files)
        if absent.isEmpty {
            return "\(failure), although every sub-library it needs is in \(directory); check `nvidia-smi` and that cuDNN 9 supports this driver"
        }
        return "\(failure): \(absent.joined(separator: ", ")) missing from \(directory) (cuDNN 9 loads them at the first convolution); "
            + "install the whole cuDNN 9 (e.g. pip install nvidia-cudnn-cu12)"
    }

    /// Runs the convolution on `stream` and waits for it; throws `.libraryBroken` naming what
    /// is missing when cuDNN cannot.
    static func run(cudnn: CUDNN, handle: OpaquePointer?, driver: CUDADriver, context: OpaquePointer?, stream: OpaquePointer?) throws(GPUError) {
        var x: OpaquePointer?, y: OpaquePointer?, filter: OpaquePointer?, convolution: OpaquePointer?
        defer {
            _ = cudnn.cudnnDestroyTensorDescriptor(x)
            _ = cudnn.cudnnDestroyTensorDescriptor(y)
            _ = cudnn.cudnnDestroyFilterDescriptor(filter)
            _ = cudnn.cudnnDestroyConvolutionDescriptor(convolution)
        }
        do throws(GPUError) {
            try cudnn.check(cudnn.cudnnCreateTensorDescriptor(&x), "cudnnCreateTensorDescriptor")
            try cudnn.check(cudnn.cudnnCreateTensorDescriptor(&y), "cudnnCreateTensorDescriptor")
            try cudnn.check(cudnn.cudnnCreateFilterDescriptor(&filter), "cudnnCreateFilterDescriptor")
            try cudnn.check(cudnn.cudnnCreateConvolutionDescriptor(&convolution), "cudnnCreateConvolutionDescriptor")
            for descriptor in [x, y] {
                try cudnn.check(cudnn.cudnnSetTensor4dDescriptor(descriptor, CUDNN.Constant.formatNCHW, CUDNN.Constant.dataFloat, 1, 1, 4, 4),
                                "cudnnSetTensor4dDescriptor")
            }
            try cudnn.check(cudnn.cudnnSetFilter4dDescriptor(filter, CUDNN.Constant.dataFloat, CUDNN.Constant.formatNCHW, 1, 1, 3, 3),
                            "cudnnSetFilter4dDescriptor")
            try cudnn.check(cudnn.cudnnSetConvolution2dDescriptor(convolution, 1, 1, 1, 1, 1, 1, CUDNN.Constant.crossCorrelation, CUDNN.Constant.dataFloat),
                            "cudnnSetConvolution2dDescriptor")
            try cudnn.check(cudnn.cudnnSetConvolutionMathType(convolution, CUDNN.Constant.mathFMA), "cudnnSetConvolutionMathType")
            let input = try DeviceBuffer(device: driver, context: context, bytes: 64)
            let weights = try DeviceBuffer(device: driver, context: context, bytes: 36)
            let output = try DeviceBuffer(device: driver, context: context, bytes: 64)
            try driver.check(driver.cuMemsetD32Async(input.address, 0, 16, stream), "cuMemsetD32Async")
            try driver.check(driver.cuMemsetD32Async(weights.address, 0, 9, stream), "cuMemsetD32Async")
            var one: Float = 1, zero: Float = 0
            // Algorithm 0, IMPLICIT_GEMM, needs no workspace.
            try cudnn.check(cudnn.cudnnConvolutionForward(handle, &one, x, input.address, filter, weights.address, convolution, 0, 0, 0, &zero, y, output.address),
                            "cudnnConvolutionForward")
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
        } catch {
            let shim = cudnn.library.origin
            let files = try? FileManager.default.contentsOfDirectory(atPath: (shim as NSString).deletingLastPathComponent)
            throw .libraryBroken(library: "cuDNN \(shim)", why: explanation(shim: shim, files: files, failure: "a 3×3 test convolution failed (\(error))"))
        }
    }
}
