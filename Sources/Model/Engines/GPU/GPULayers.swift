/// The float32 arithmetic a GPU step may use: plain fp32 (parity with the CPU and PyTorch) or
/// TF32 tensor cores for convolutions and the classifier (PyTorch's default for cuDNN).
public enum Precision: String, Codable, Hashable, Sendable, CaseIterable {
    case fp32, tf32
}

/// cuDNN tensor descriptors (NCHW, float) by shape, created once and shared by every layer.
final class TensorDescriptors {
    private let device: CUDADevice
    private var cache: [[Int]: OpaquePointer?] = [:]

    init(device: CUDADevice) { self.device = device }

    func get(_ n: Int, _ c: Int, _ h: Int, _ w: Int) throws(GPUError) -> OpaquePointer? {
        if let descriptor = cache[[n, c, h, w]] { return descriptor }
        let cudnn = device.cudnn
        var descriptor: OpaquePointer?
        try cudnn.check(cudnn.cudnnCreateTensorDescriptor(&descriptor), "cudnnCreateTensorDescriptor")
        cache[[n, c, h, w]] = descriptor  // owned (and destroyed) from here on, even if setting it fails
        try cudnn.check(cudnn.cudnnSetTensor4dDescriptor(descriptor, CUDNN.Constant.formatNCHW, CUDNN.Constant.dataFloat,
                                                         Int32(n), Int32(c), Int32(h), Int32(w)), "cudnnSetTensor4dDescriptor")
        return descriptor
    }

    deinit {
        let cudnn = device.cudnn, descriptors = cache.values
        device.releasing { for descriptor in descriptors { _ = cudnn.cudnnDestroyTensorDescriptor(descriptor) } }
    }
}

/// One convolution on the device: cuDNN's forward, backward-data and backward-filter, with the
/// first deterministic algorithm of cuDNN's heuristic order for each (`ConvolutionAlgorithmChoice`),
/// chosen once per batch size within the preallocated workspace: the same shape, device model
/// and cuDNN version give the same algorithms in every process, so a resumed run repeats an
/// uninterrupted one bit for bit.
final class GPUConvolution {
    let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    let inputSide: (height: Int, width: Int), outputSide: (height: Int, width: Int)
    /// Device addresses of the weight and its gradient (slices of the network's flat buffers).
    let weight: UInt64, gradient: UInt64
    private let device: CUDADevice
    private let filter: OpaquePointer?
    private let convolution: OpaquePointer?
    private var algorithms: [Int: Algorithms] = [:]

    /// The chosen algorithm of each direction for one batch size.
    struct Algorithms: Equatable {
        var forward: ConvolutionAlgorithmChoice.Choice, backwardData: ConvolutionAlgorithmChoice.Choice
        var backwardFilter: ConvolutionAlgorithmChoice.Choice
    }

    init(device: CUDADevice, conv: Conv2d, inputHeight: Int, inputWidth: Int, weight: UInt64, gradient: UInt64) throws(GPUError) {
        self.device = device
        inChannels = conv.inChannels
        outChannels = conv.outChannels
        kernel = conv.kernel
        stride = conv.stride
        padding = conv.padding
        inputSide = (inputHeight, inputWidth)
        outputSide = (conv.outputExtent(inputHeight), conv.outputExtent(inputWidth))
        self.weight = weight
        self.gradient = gradient
        let cudnn = device.cudnn
        var filter: OpaquePointer?, convolution: OpaquePointer?
        try cudnn.check(cudnn.cudnnCreateFilterDescriptor(&filter), "cudnnCreateFilterDescriptor")
        self.filter = filter
        try cudnn.check(cudnn.cudnnCreateConvolutionDescriptor(&convolution), "cudnnCreateConvolutionDescriptor")
        self.convolution = convolution
        try cudnn.check(cudnn.cudnnSetFilter4dDescriptor(filter, CUDNN.Constant.dataFloat, CUDNN.Constant.formatNCHW,
                                                         Int32(outChannels), Int32(inChannels), Int32(kernel), Int32(kernel)),
                        "cudnnSetFilter4dDescriptor")
        try cudnn.check(cudnn.cudnnSetConvolution2dDescriptor(convolution, Int32(padding), Int32(padding), Int32(stride), Int32(stride),
                                                              1, 1, CUDNN.Constant.crossCorrelation, CUDNN.Constant.dataFloat),
                        "cudnnSetConvolution2dDescriptor")
    }

    deinit {
        let cudnn = device.cudnn
        device.releasing {
            _ = cudnn.cudnnDestroyFilterDescriptor(filter)
            _ = cudnn.cudnnDestroyConvolutionDescriptor(convolution)
        }
    }

    /// "3×3 conv 64→128 stride 2 on 32×32", for logs.
    var shapeDescription: String {
        "\(kernel)×\(kernel) conv \(inChannels)→\(outChannels) stride \(stride) on \(inputSide.height)×\(inputSide.width)"
    }

    /// Picks the algorithms for batch `n` from cuDNN's heuristics (no kernel runs, nothing is
    /// timed); `shared` reuses choices of identical shapes. Returns the log line of a new
    /// choice, nil when it was known.
    @discardableResult
    func prepare(n: Int, precision: Precision, workspace: DeviceBuffer, descriptors: TensorDescriptors,
                 shared: inout [[Int]: Algorithms]) throws(GPUError) -> String? {
        if algorithms[n] != nil { return nil }
        let key = [n, inChannels, outChannels, kernel, stride, padding, inputSide.height, inputSide.width, precision == .fp32 ? 0 : 1]
        if let known = shared[key] {
            algorithms[n] = known
            return nil
        }
        let cudnn = device.cudnn, handle = device.cudnnHandle, convolution = convolution, filter = filter
        let x = try descriptors.get(n, inChannels, inputSide.height, inputSide.width)
        let y = try descriptors.get(n, outChannels, outputSide.height, outputSide.width)
        // FMA math keeps every candidate off the tensor cores (PyTorch's allow_tf32 = False);
        // default math lets cuDNN offer TF32 kernels on Ampere and later.
        let queryMath = precision == .fp32 ? CUDNN.Constant.mathFMA : CUDNN.Constant.mathDefault
        let requested: Int32 = 16
        let results = UnsafeMutableRawPointer.allocate(byteCount: CUDNN.Performance.stride * Int(requested), alignment: 8)
        defer { results.deallocate() }
        typealias Query = (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32,
                           UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer) -> Int32
        typealias Size = (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32, UnsafeMutablePointer<Int>) -> Int32
        func choose(_ direction: String, _ name: String, _ query: Query, _ size: Size,
                    _ a: OpaquePointer?, _ b: OpaquePointer?, _ c: OpaquePointer?) throws(GPUError) -> ConvolutionAlgorithmChoice.Choice {
            try cudnn.check(cudnn.cudnnSetConvolutionMathType(convolution, queryMath), "cudnnSetConvolutionMathType")
            var returned: Int32 = 0
            try cudnn.check(query(handle, a, b, convolution, c, requested, &returned, results), name)
            let candidates = (0..<Int(Swift.min(returned, requested))).map { CUDNN.Performance(reading: results + $0 * CUDNN.Performance.stride) }
            let choice = ConvolutionAlgorithmChoice.choose(candidates, precision: precision, workspaceBytes: workspace.bytes) { candidate in
                let math = precision == .fp32 ? CUDNN.Constant.mathFMA : candidate.mathType
                guard cudnn.cudnnSetConvolutionMathType(convolution, math) == 0 else { return nil }
                var bytes = 0
                return size(handle, a, b, convolution, c, candidate.algorithm, &bytes) == 0 ? bytes : nil
            }
            guard let choice else {
                throw .invalid("no deterministic \(direction) algorithm for a \(shapeDescription) at batch \(n) within \(workspace.bytes >> 20) MiB "
                    + "of workspace: \(ConvolutionAlgorithmChoice.refusal(candidates, precision: precision)); try --precision \(precision == .fp32 ? "tf32" : "fp32") or another cuDNN 9")
            }
            return choice
        }
        let chosen = Algorithms(
            forward: try choose("forward", "cudnnGetConvolutionForwardAlgorithm_v7", cudnn.cudnnGetConvolutionForwardAlgorithm_v7,
                                cudnn.cudnnGetConvolutionForwardWorkspaceSize, x, filter, y),
            backwardData: try choose("backward-data", "cudnnGetConvolutionBackwardDataAlgorithm_v7", cudnn.cudnnGetConvolutionBackwardDataAlgorithm_v7,
                                     cudnn.cudnnGetConvolutionBackwardDataWorkspaceSize, filter, y, x),
            backwardFilter: try choose("backward-filter", "cudnnGetConvolutionBackwardFilterAlgorithm_v7", cudnn.cudnnGetConvolutionBackwardFilterAlgorithm_v7,
                                       cudnn.cudnnGetConvolutionBackwardFilterWorkspaceSize, x, y, filter))
        algorithms[n] = chosen
        shared[key] = chosen
        func describe(_ c: ConvolutionAlgorithmChoice.Choice) -> String { "\(c.algorithm) (math \(c.math), \(c.workspace >> 10) KiB)" }
        return "\(shapeDescription) at batch \(n), \(precision.rawValue): forward \(describe(chosen.forward)), "
            + "backward-data \(describe(chosen.backwardData)), backward-filter \(describe(chosen.backwardFilter))"
    }

    private func chosen(_ n: Int) throws(GPUError) -> Algorithms {
        guard let chosen = algorithms[n] else { throw .invalid("convolution \(inChannels)→\(outChannels) used at batch \(n) before prepare") }
        return chosen
    }

    /// `y ← conv(x, W)`.
    func forward(n: Int, x: UInt64, y: UInt64, workspace: DeviceBuffer, descriptors: TensorDescriptors) throws(GPUError) {
        let algorithm = try chosen(n).forward
        let cudnn = device.cudnn
        var one: Float = 1, zero: Float = 0
        try cudnn.check(cudnn.cudnnSetConvolutionMathType(convolution, algorithm.math), "cudnnSetConvolutionMathType")
        try cudnn.check(cudnn.cudnnConvolutionForward(device.cudnnHandle, &one, try descriptors.get(n, inChannels, inputSide.height, inputSide.width), x,
                                                      filter, weight, convolution, algorithm.algorithm, workspace.address, workspace.bytes, &zero,
                                                      try descriptors.get(n, outChannels, outputSide.height, outputSide.width), y),
                        "cudnnConvolutionForward")
    }

    /// `dx ← convᵀ(dy, W)`, or `dx += …` when `accumulate` (the projection shortcut's share).
    func backwardData(n: Int, dy: UInt64, dx: UInt64, accumulate: Bool, workspace: DeviceBuffer, descriptors: TensorDescriptors) throws(GPUError) {
        let algorithm = try chosen(n).backwardData
        let cudnn = device.cudnn
        var one: Float = 1, beta: Float = accumulate ? 1 : 0
        try cudnn.check(cudnn.cudnnSetConvolutionMathType(convolution, algorithm.math), "cudnnSetConvolutionMathType")
        try cudnn.check(cudnn.cudnnConvolutionBackwardData(device.cudnnHandle, &one, filter, weight,
                                                           try descriptors.get(n, outChannels, outputSide.height, outputSide.width), dy,
                                                           convolution, algorithm.algorithm, workspace.address, workspace.bytes, &beta,
                                                           try descriptors.get(n, inChannels, inputSide.height, inputSide.width), dx),
                        "cudnnConvolutionBackwardData")
    }

    /// `dW ← Σ_batch x ⋆ dy` (overwrites the gradient, as the CPU layer does).
    func backwardFilter(n: Int, x: UInt64, dy: UInt64, workspace: DeviceBuffer, descriptors: TensorDescriptors) throws(GPUError) {
        let algorithm = try chosen(n).backwardFilter
        let cudnn = device.cudnn
        var one: Float = 1, zero: Float = 0
        try cudnn.check(cudnn.cudnnSetConvolutionMathType(convolution, algorithm.math), "cudnnSetConvolutionMathType")
        try cudnn.check(cudnn.cudnnConvolutionBackwardFilter(device.cudnnHandle, &one, try descriptors.get(n, inChannels, inputSide.height, inputSide.width), x,
                                                             try descriptors.get(n, outChannels, outputSide.height, outputSide.width), dy,
                                                             convolution, algorithm.algorithm, workspace.address, workspace.bytes, &zero, filter, gradient),
                        "cudnnConvolutionBackwardFilter")
    }
}

/// One BatchNorm on the device through cuDNN's spatial mode, which has PyTorch's semantics:
/// batch statistics in training, running statistics updated with momentum 0.1 from the
/// unbiased variance, eps 1e-5; evaluation normalises with the running statistics.
final class GPUBatchNorm {
    let channels: Int
    /// Device addresses of γ, β, their gradients, and the running mean and variance.
    let gamma: UInt64, beta: UInt64, gammaGradient: UInt64, betaGradient: UInt64, runningMean: UInt64, runningVariance: UInt64
    private let device: CUDADevice
    private let parameters: OpaquePointer?
    private let savedMean: DeviceBuffer, savedInverseStd: DeviceBuffer
    private static let momentum = 0.1, epsilon = 1e-5

    init(device: CUDADevice, channels: Int, gamma: UInt64, beta: UInt64, gammaGradient: UInt64, betaGradient: UInt64,
         runningMean: UInt64, runningVariance: UInt64, descriptors: TensorDescriptors) throws(GPUError) {
        self.device = device
        self.channels = channels
        self.gamma = gamma
        self.beta = beta
        self.gammaGradient = gammaGradient
        self.betaGradient = betaGradient
        self.runningMean = runningMean
        self.runningVariance = runningVariance
        parameters = try descriptors.get(1, channels, 1, 1)
        savedMean = try device.allocate(bytes: 4 * channels)
        savedInverseStd = try device.allocate(bytes: 4 * channels)
    }

    /// Training: `y ← γ·(x − μ_B)/σ_B + β`, running statistics updated.
    func forwardTraining(n: Int, height: Int, width: Int, x: UInt64, y: UInt64, descriptors: TensorDescriptors) throws(GPUError) {
        let cudnn = device.cudnn
        let descriptor = try descriptors.get(n, channels, height, width)
        var one: Float = 1, zero: Float = 0
        try cudnn.check(cudnn.cudnnBatchNormalizationForwardTraining(device.cudnnHandle, CUDNN.Constant.batchNormSpatial, &one, &zero,
                                                                     descriptor, x, descriptor, y, parameters, gamma, beta, Self.momentum,
                                                                     runningMean, runningVariance, Self.epsilon, savedMean.address, savedInverseStd.address),
                        "cudnnBatchNormalizationForwardTraining")
    }

    /// Evaluation: normalised by the running statistics.
    func forwardInference(n: Int, height: Int, width: Int, x: UInt64, y: UInt64, descriptors: TensorDescriptors) throws(GPUError) {
        let cudnn = device.cudnn
        let descriptor = try descriptors.get(n, channels, height, width)
        var one: Float = 1, zero: Float = 0
        try cudnn.check(cudnn.cudnnBatchNormalizationForwardInference(device.cudnnHandle, CUDNN.Constant.batchNormSpatial, &one, &zero,
                                                                      descriptor, x, descriptor, y, parameters, gamma, beta,
                                                                      runningMean, runningVariance, Self.epsilon),
                        "cudnnBatchNormalizationForwardInference")
    }

    /// `dx`, `dγ`, `dβ` from `dy` and the training forward's input `x` and saved statistics.
    func backward(n: Int, height: Int, width: Int, x: UInt64, dy: UInt64, dx: UInt64, descriptors: TensorDescriptors) throws(GPUError) {
        let cudnn = device.cudnn
        let descriptor = try descriptors.get(n, channels, height, width)
        // Separate scalars: one variable may not be passed twice to the same call.
        var dataScale: Float = 1, dataKeep: Float = 0, parameterScale: Float = 1, parameterKeep: Float = 0
        try cudnn.check(cudnn.cudnnBatchNormalizationBackward(device.cudnnHandle, CUDNN.Constant.batchNormSpatial,
                                                              &dataScale, &dataKeep, &parameterScale, &parameterKeep,
                                                              descriptor, x, descriptor, dy, descriptor, dx, parameters, gamma,
                                                              gammaGradient, betaGradient, Self.epsilon, savedMean.address, savedInverseStd.address),
                        "cudnnBatchNormalizationBackward")
    }
}
