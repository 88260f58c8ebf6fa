import Logging
/// ResNet18 on one CUDA device, NCHW float32, with the CPU network (`ResNet18`) as its shape,
/// its names and the host copy of its state.
///
/// Parameters, gradients, momenta and masks each live in one flat device buffer in
/// `state_dict` order (every tensor starts on a 256-byte boundary), so the optimiser is one
/// kernel over all of them. Activations are allocated once for the largest batch. The training
/// step reads top to bottom in `forward` and `backward`: cuDNN for convolutions and BatchNorm,
/// cuBLAS for the classifier, PruneSweep's kernels for everything element-wise.
final class GPUNetwork {
    let device: CUDADevice
    let host: ResNet18
    let precision: Precision
    let maxBatch: Int
    let imageChannels: Int, imageHeight: Int, imageWidth: Int

    /// Element offset of each `host.parameters[i]` in the flat buffers, and the padded total.
    private let parameterOffsets: [Int]
    let parameterElements: Int
    let weights: DeviceBuffer, gradients: DeviceBuffer, momenta: DeviceBuffer, masks: DeviceBuffer
    /// Element offset of each `host.buffers[i]` (BN running statistics) in `statistics`.
    private let statisticOffsets: [Int]
    let statistics: DeviceBuffer

    /// A feature map on the device, sized for `maxBatch` images.
    struct Map {
        let channels: Int, height: Int, width: Int
        let buffer: DeviceBuffer
        var address: UInt64 { buffer.address }
        func elements(_ n: Int) -> Int { n * channels * height * width }
    }

    /// One residual block: its layers and the maps the backward pass reads.
    struct Block {
        let conv1: GPUConvolution, bn1: GPUBatchNorm, conv2: GPUConvolution, bn2: GPUBatchNorm
        let shortcut: (conv: GPUConvolution, bn: GPUBatchNorm, convolved: Map, normalised: Map)?
        let input: Map, convolved1: Map, activated1: Map, convolved2: Map, normalised2: Map, output: Map
    }

    let input: Map
    let labels: DeviceBuffer
    private let stem: GPUConvolution, stemNorm: GPUBatchNorm
    private let stemConvolved: Map, stemActivated: Map
    private let blocks: [Block]
    private let features: Int, classes: Int
    private let linearWeight: Int, linearBias: Int
    let pooled: DeviceBuffer, logits: DeviceBuffer, logitGradient: DeviceBuffer, pooledGradient: DeviceBuffer
    let sampleLoss: DeviceBuffer, sampleCorrect: DeviceBuffer
    /// Gradient scratch: two maps that alternate as a block's output and input gradient, and two
    /// for the gradients inside a block; each as large as the largest activation.
    private let gradientA: DeviceBuffer, gradientB: DeviceBuffer, scratch1: DeviceBuffer, scratch2: DeviceBuffer
    let workspace: DeviceBuffer
    private let descriptors: TensorDescriptors
    private var sharedAlgorithms: [[Int]: GPUConvolution.Algorithms] = [:]
    /// When set, every library call and kernel is timed into it (the benchmark's breakdown).
    var profile: GPUProfile?

    /// cuDNN's algorithms may use up to this much scratch memory.
    static let workspaceBytes = 256 << 20

    init(device: CUDADevice, host: ResNet18, precision: Precision, maxBatch: Int, imageHeight: Int, imageWidth: Int) throws(GPUError) {
        self.device = device
        self.host = host
        self.precision = precision
        self.maxBatch = maxBatch
        imageChannels = host.architecture.inputChannels
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        descriptors = TensorDescriptors(device: device)

        func layout(_ counts: [Int]) -> (offsets: [Int], total: Int) {
            var offsets: [Int] = [], total = 0
            for count in counts {
                offsets.append(total)
                total += (count + 63) / 64 * 64
            }
            return (offsets, total)
        }
        let parameterLayout = layout(host.parameters.map(\.value.count))
        parameterOffsets = parameterLayout.offsets
        parameterElements = parameterLayout.total
        weights = try device.allocate(bytes: 4 * parameterElements)
        gradients = try device.allocate(bytes: 4 * parameterElements)
        momenta = try device.allocate(bytes: 4 * parameterElements)
        masks = try device.allocate(bytes: 4 * parameterElements)
        let statisticLayout = layout(host.buffers.map(\.tensor.count))
        statisticOffsets = statisticLayout.offsets
        statistics = try device.allocate(bytes: 4 * statisticLayout.total)
        workspace = try device.allocate(bytes: Self.workspaceBytes)

        let parameterIndex = Dictionary(uniqueKeysWithValues: host.parameters.enumerated().map { (ObjectIdentifier($0.element), $0.offset) })
        let statisticIndex = Dictionary(uniqueKeysWithValues: host.buffers.enumerated().map { (ObjectIdentifier($0.element.tensor), $0.offset) })
        let weights = weights, gradients = gradients, statistics = statistics
        let parameterOffsets = parameterOffsets, statisticOffsets = statisticOffsets
        func weight(_ p: Parameter) -> UInt64 { weights.offset(parameterOffsets[parameterIndex[ObjectIdentifier(p)] ?? 0]) }
        func gradient(_ p: Parameter) -> UInt64 { gradients.offset(parameterOffsets[parameterIndex[ObjectIdentifier(p)] ?? 0]) }
        func statistic(_ t: Tensor) -> UInt64 { statistics.offset(statisticOffsets[statisticIndex[ObjectIdentifier(t)] ?? 0]) }
        func convolution(_ conv: Conv2d, height: Int, width: Int) throws(GPUError) -> GPUConvolution {
            try GPUConvolution(device: device, conv: conv, inputHeight: height, inputWidth: width, weight: weight(conv.weight), gradient: gradient(conv.weight))
        }
        let descriptors = descriptors
        func norm(_ bn: BatchNorm2d) throws(GPUError) -> GPUBatchNorm {
            try GPUBatchNorm(device: device, channels: bn.channels, gamma: weight(bn.weight), beta: weight(bn.bias),
                             gammaGradient: gradient(bn.weight), betaGradient: gradient(bn.bias),
                             runningMean: statistic(bn.runningMean), runningVariance: statistic(bn.runningVar), descriptors: descriptors)
        }
        func map(_ channels: Int, _ height: Int, _ width: Int) throws(GPUError) -> Map {
            Map(channels: channels, height: height, width: width, buffer: try device.allocate(bytes: 4 * maxBatch * channels * height * width))
        }

        input = try map(imageChannels, imageHeight, imageWidth)
        labels = try device.allocate(bytes: 4 * maxBatch)
        stem = try convolution(host.conv1, height: imageHeight, width: imageWidth)
        stemNorm = try norm(host.bn1)
        stemConvolved = try map(host.conv1.outChannels, stem.outputSide.height, stem.outputSide.width)
        stemActivated = try map(host.conv1.outChannels, stem.outputSide.height, stem.outputSide.width)
        var largest = stemConvolved.elements(maxBatch)
        var blocks: [Block] = []
        var current = stemActivated
        for block in host.blocks {
            let conv1 = try convolution(block.conv1, height: current.height, width: current.width)
            let (h, w) = conv1.outputSide
            let planes = block.conv1.outChannels
            var shortcut: (conv: GPUConvolution, bn: GPUBatchNorm, convolved: Map, normalised: Map)?
            if let projection = block.shortcut {
                shortcut = (try convolution(projection.conv, height: current.height, width: current.width), try norm(projection.bn),
                            try map(planes, h, w), try map(planes, h, w))
            }
            let made = Block(conv1: conv1, bn1: try norm(block.bn1), conv2: try convolution(block.conv2, height: h, width: w), bn2: try norm(block.bn2),
                             shortcut: shortcut, input: current, convolved1: try map(planes, h, w), activated1: try map(planes, h, w),
                             convolved2: try map(planes, h, w), normalised2: try map(planes, h, w), output: try map(planes, h, w))
            blocks.append(made)
            current = made.output
            largest = Swift.max(largest, made.output.elements(maxBatch))
        }
        self.blocks = blocks
        features = host.linear.inFeatures
        classes = host.linear.outFeatures
        linearWeight = parameterIndex[ObjectIdentifier(host.linear.weight)] ?? 0
        linearBias = parameterIndex[ObjectIdentifier(host.linear.bias)] ?? 0
        pooled = try device.allocate(bytes: 4 * maxBatch * features)
        pooledGradient = try device.allocate(bytes: 4 * maxBatch * features)
        logits = try device.allocate(bytes: 4 * maxBatch * classes)
        logitGradient = try device.allocate(bytes: 4 * maxBatch * classes)
        sampleLoss = try device.allocate(bytes: 4 * maxBatch)
        sampleCorrect = try device.allocate(bytes: 4 * maxBatch)
        gradientA = try device.allocate(bytes: 4 * largest)
        gradientB = try device.allocate(bytes: 4 * largest)
        scratch1 = try device.allocate(bytes: 4 * largest)
        scratch2 = try device.allocate(bytes: 4 * largest)
    }

    // MARK: - Algorithm choice

    /// Every convolution's chosen algorithms, one line per distinct shape and batch size, in
    /// the order they were chosen (logged at debug level; the self-test compares them across
    /// processes).
    private(set) var algorithmChoices: [String] = []

    /// Chooses every convolution's algorithms for batch `n` (before a graph is captured).
    func prepare(n: Int) throws(GPUError) {
        try device.makeCurrent()
        let convolutions = [stem] + blocks.flatMap { [$0.conv1, $0.conv2] + ($0.shortcut.map { [$0.conv] } ?? []) }
        for convolution in convolutions {
            if let line = try convolution.prepare(n: n, precision: precision, workspace: workspace, descriptors: descriptors, shared: &sharedAlgorithms) {
                algorithmChoices.append(line)
                device.logger.debug("cuDNN algorithms (heuristic order, first deterministic): \(line)")
            }
        }
    }

    // MARK: - The step

    private func kernel(_ name: String, elements: Int, blocks: Int? = nil, _ arguments: [GPUKernels.Argument]) throws(GPUError) {
        try profiled(.ownKernels) { () throws(GPUError) in
            try device.kernels.launch(name, elements: elements, blocks: blocks, stream: device.stream, arguments)
        }
    }

    private func library(_ body: () throws(GPUError) -> Void) throws(GPUError) { try profiled(.libraries, body) }

    private func profiled(_ category: GPUProfile.Category, _ body: () throws(GPUError) -> Void) throws(GPUError) {
        if let profile { try profile.time(category, body) } else { try body() }
    }

    /// Logits `[n, classes]` of the images in `input`; BatchNorm uses batch statistics (and
    /// updates its running ones) when `training`.
    func forward(n: Int, training: Bool) throws(GPUError) {
        func norm(_ bn: GPUBatchNorm, _ map: Map, x: UInt64, y: UInt64) throws(GPUError) {
            try library { () throws(GPUError) in
                if training {
                    try bn.forwardTraining(n: n, height: map.height, width: map.width, x: x, y: y, descriptors: descriptors)
                } else {
                    try bn.forwardInference(n: n, height: map.height, width: map.width, x: x, y: y, descriptors: descriptors)
                }
            }
        }
        func conv(_ layer: GPUConvolution, x: UInt64, y: UInt64) throws(GPUError) {
            try library { () throws(GPUError) in try layer.forward(n: n, x: x, y: y, workspace: workspace, descriptors: descriptors) }
        }
        try conv(stem, x: input.address, y: stemConvolved.address)
        try norm(stemNorm, stemConvolved, x: stemConvolved.address, y: stemActivated.address)
        try kernel("relu_forward", elements: stemActivated.elements(n), [.pointer(stemActivated.address), .int(stemActivated.elements(n))])
        for block in blocks {
            try conv(block.conv1, x: block.input.address, y: block.convolved1.address)
            try norm(block.bn1, block.convolved1, x: block.convolved1.address, y: block.activated1.address)
            try kernel("relu_forward", elements: block.activated1.elements(n), [.pointer(block.activated1.address), .int(block.activated1.elements(n))])
            try conv(block.conv2, x: block.activated1.address, y: block.convolved2.address)
            try norm(block.bn2, block.convolved2, x: block.convolved2.address, y: block.normalised2.address)
            var skip = block.input.address
            if let shortcut = block.shortcut {
                try conv(shortcut.conv, x: block.input.address, y: shortcut.convolved.address)
                try norm(shortcut.bn, shortcut.convolved, x: shortcut.convolved.address, y: shortcut.normalised.address)
                skip = shortcut.normalised.address
            }
            let count = block.output.elements(n)
            try kernel("add_relu_forward", elements: count, [.pointer(block.normalised2.address), .pointer(skip), .pointer(block.output.address), .int(count)])
        }
        let last = blocks.last?.output ?? stemActivated
        let planes = n * last.channels, area = last.height * last.width
        try kernel("avgpool_forward", elements: planes, [.pointer(last.address), .pointer(pooled.address), .int(planes), .int(area)])
        // logits[n, K] (row-major) = pooled[n, F] · Wᵀ: in cuBLAS's column-major terms
        // logitsᵀ (K×n) = W (K×F, stored as Fᵀ-major, so transposed) · pooledᵀ (F×n).
        try gemm(.transpose, .none, m: classes, n: n, k: features, a: weights.offset(parameterOffsets[linearWeight]), lda: features,
                 b: pooled.address, ldb: features, c: logits.address, ldc: classes)
        try kernel("bias_add", elements: n * classes, [.pointer(logits.address), .pointer(weights.offset(parameterOffsets[linearBias])), .int(n), .int(classes)])
    }

    /// Every parameter's gradient from `logitGradient` (written by the loss) and the maps of
    /// the last training forward.
    func backward(n: Int) throws(GPUError) {
        let ws = workspace, ds = descriptors
        let linearWeightGradient = gradients.offset(parameterOffsets[linearWeight])
        // dW (K×F row-major = F×K column-major) = pooledᵀ (F×n) · dlogits (n×K).
        try gemm(.none, .transpose, m: features, n: classes, k: n, a: pooled.address, lda: features,
                 b: logitGradient.address, ldb: classes, c: linearWeightGradient, ldc: features)
        try kernel("bias_grad", elements: classes, [.pointer(logitGradient.address), .pointer(gradients.offset(parameterOffsets[linearBias])),
                                                    .int(n), .int(classes)])
        // dpooled (n×F row-major = F×n column-major) = W (F×K column-major view) · dlogitsᵀ (K×n).
        try gemm(.none, .none, m: features, n: n, k: classes, a: weights.offset(parameterOffsets[linearWeight]), lda: features,
                 b: logitGradient.address, ldb: classes, c: pooledGradient.address, ldc: features)
        let last = blocks.last?.output ?? stemActivated
        let area = last.height * last.width
        try kernel("avgpool_backward", elements: n * last.channels * area,
                   [.pointer(pooledGradient.address), .pointer(gradientA.address), .int(n * last.channels), .int(area)])

        var dy = gradientA, other = gradientB
        for block in blocks.reversed() {
            let size = block.output.elements(n), h = block.output.height, w = block.output.width
            // The block's final ReLU, in place: g = dy where the output was positive.
            try kernel("relu_backward", elements: size, [.pointer(dy.address), .pointer(block.output.address), .pointer(dy.address), .int(size)])
            try library { () throws(GPUError) in
                try block.bn2.backward(n: n, height: h, width: w, x: block.convolved2.address, dy: dy.address, dx: scratch1.address, descriptors: ds)
                try block.conv2.backwardFilter(n: n, x: block.activated1.address, dy: scratch1.address, workspace: ws, descriptors: ds)
                try block.conv2.backwardData(n: n, dy: scratch1.address, dx: scratch2.address, accumulate: false, workspace: ws, descriptors: ds)
            }
            try kernel("relu_backward", elements: size, [.pointer(scratch2.address), .pointer(block.activated1.address), .pointer(scratch2.address), .int(size)])
            try library { () throws(GPUError) in
                try block.bn1.backward(n: n, height: h, width: w, x: block.convolved1.address, dy: scratch2.address, dx: scratch1.address, descriptors: ds)
                try block.conv1.backwardFilter(n: n, x: block.input.address, dy: scratch1.address, workspace: ws, descriptors: ds)
                try block.conv1.backwardData(n: n, dy: scratch1.address, dx: other.address, accumulate: false, workspace: ws, descriptors: ds)
            }
            if let shortcut = block.shortcut {
                try library { () throws(GPUError) in
                    try shortcut.bn.backward(n: n, height: h, width: w, x: shortcut.convolved.address, dy: dy.address, dx: scratch1.address, descriptors: ds)
                    try shortcut.conv.backwardFilter(n: n, x: block.input.address, dy: scratch1.address, workspace: ws, descriptors: ds)
                    try shortcut.conv.backwardData(n: n, dy: scratch1.address, dx: other.address, accumulate: true, workspace: ws, descriptors: ds)
                }
            } else {
                try kernel("add_into", elements: size, [.pointer(other.address), .pointer(dy.address), .int(size)])
            }
            swap(&dy, &other)
        }
        let size = stemActivated.elements(n)
        try kernel("relu_backward", elements: size, [.pointer(dy.address), .pointer(stemActivated.address), .pointer(dy.address), .int(size)])
        try library { () throws(GPUError) in
            try stemNorm.backward(n: n, height: stemActivated.height, width: stemActivated.width, x: stemConvolved.address,
                                  dy: dy.address, dx: scratch1.address, descriptors: ds)
            try stem.backwardFilter(n: n, x: input.address, dy: scratch1.address, workspace: ws, descriptors: ds)
        }
    }

    /// The loss and hits of the batch in `logits` against `labels`, into `sampleLoss` and
    /// `sampleCorrect`; in training also `logitGradient`.
    func loss(n: Int, training: Bool) throws(GPUError) {
        try kernel("softmax_cross_entropy", elements: n, [.pointer(logits.address), .pointer(labels.address), .int(n), .int(classes),
                                                          .pointer(training ? logitGradient.address : 0), .pointer(sampleLoss.address),
                                                          .pointer(sampleCorrect.address)])
    }

    /// Adds the batch's loss sum and hit count to `totals` (two doubles on the device).
    func accumulate(n: Int, into totals: UInt64) throws(GPUError) {
        try kernel("accumulate_metrics", elements: 256, blocks: 1, [.pointer(sampleLoss.address), .pointer(sampleCorrect.address), .int(n), .pointer(totals)])
    }

    /// One SGD update of every parameter, its learning rate and first-step flag read from
    /// `schedule` at the step index `step` (both on the device).
    func update(optimizer: SGD, schedule: UInt64, step: UInt64) throws(GPUError) {
        try kernel("sgd_update", elements: parameterElements,
                   [.pointer(weights.address), .pointer(gradients.address), .pointer(momenta.address), .pointer(masks.address),
                    .pointer(schedule), .pointer(step), .int(parameterElements), .float(optimizer.momentum), .float(optimizer.weightDecay),
                    .int(optimizer.nesterov ? 1 : 0)])
    }

    /// Runs a kernel of this network's module (the data pipeline's augmentation and the step
    /// counter live with the engine).
    func launch(_ name: String, elements: Int, _ arguments: [GPUKernels.Argument]) throws(GPUError) {
        try kernel(name, elements: elements, arguments)
    }

    private func gemm(_ transA: CUBLAS.Operation, _ transB: CUBLAS.Operation, m: Int, n: Int, k: Int,
                      a: UInt64, lda: Int, b: UInt64, ldb: Int, c: UInt64, ldc: Int) throws(GPUError) {
        let cublas = device.cublas
        var one: Float = 1, zero: Float = 0
        try library { () throws(GPUError) in
            try cublas.check(cublas.cublasSetMathMode(device.cublasHandle, precision == .tf32 ? CUBLAS.MathMode.tf32.rawValue : CUBLAS.MathMode.default.rawValue),
                             "cublasSetMathMode")
            try cublas.check(cublas.cublasSgemm(device.cublasHandle, transA.rawValue, transB.rawValue, Int32(m), Int32(n), Int32(k), &one,
                                                a, Int32(lda), b, Int32(ldb), &zero, c, Int32(ldc)), "cublasSgemm_v2")
        }
    }

    // MARK: - State

    /// Uploads the host network's weights, BN statistics, momenta and masks (ones where a
    /// tensor has no mask).
    func push() throws(GPUError) {
        try device.makeCurrent()
        for (index, parameter) in host.parameters.enumerated() {
            let offset = parameterOffsets[index], bytes = 4 * parameter.value.count
            try device.upload(parameter.value.pointer, bytes: bytes, to: weights.offset(offset))
            try device.upload(parameter.momentum.pointer, bytes: bytes, to: momenta.offset(offset))
            if let mask = parameter.mask {
                try device.upload(mask.pointer, bytes: bytes, to: masks.offset(offset))
            } else {
                try device.fill(masks.offset(offset), words: parameter.value.count, pattern: Float(1).bitPattern)
            }
        }
        for (index, buffer) in host.buffers.enumerated() {
            try device.upload(buffer.tensor.pointer, bytes: 4 * buffer.tensor.count, to: statistics.offset(statisticOffsets[index]))
        }
        try device.synchronize()
    }

    /// Downloads weights, BN statistics and momenta into the host network.
    func pull() throws(GPUError) {
        try device.makeCurrent()
        for (index, parameter) in host.parameters.enumerated() {
            let offset = parameterOffsets[index], bytes = 4 * parameter.value.count
            try device.download(weights.offset(offset), bytes: bytes, into: parameter.value.pointer)
            try device.download(momenta.offset(offset), bytes: bytes, into: parameter.momentum.pointer)
        }
        for (index, buffer) in host.buffers.enumerated() {
            try device.download(statistics.offset(statisticOffsets[index]), bytes: 4 * buffer.tensor.count, into: buffer.tensor.pointer)
        }
    }

    /// Downloads every parameter's gradient into the host network (the parity check).
    func pullGradients() throws(GPUError) {
        for (index, parameter) in host.parameters.enumerated() {
            try device.download(gradients.offset(parameterOffsets[index]), bytes: 4 * parameter.value.count, into: parameter.gradient.pointer)
        }
    }
}
