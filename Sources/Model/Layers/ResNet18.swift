/// The CIFAR ResNet18 of kuangliu/pytorch-cifar (the original study's model), with a width
/// multiplier, any number of input channels and classes, and PyTorch `state_dict` names.
///
/// Stem: 3×3 conv → BN → ReLU; four stages of two BasicBlocks with widths w, 2w, 4w, 8w and
/// first strides 1, 2, 2, 2; global average pool; linear. Width 64 with 3 input channels and
/// 10 classes has 11,173,962 parameters.
public final class ResNet18 {
    /// The shape-determining hyper-parameters.
    public struct Architecture: Codable, Hashable, Sendable {
        /// Channels of the first stage (64 in the paper).
        public var width: Int
        /// Image channels (3 for CIFAR-10, 1 for Fashion-MNIST).
        public var inputChannels: Int
        /// Output classes.
        public var classes: Int
        /// Residual blocks per stage; stage s has width·2^s channels and downsamples (stride 2)
        /// in its first block when s > 0. ResNet18 is [2, 2, 2, 2]; smaller lists give the
        /// miniature networks of the pruning reference's test vectors.
        public var blocksPerStage: [Int]

        /// An architecture; the defaults are the paper's CIFAR-10 network.
        public init(width: Int = 64, inputChannels: Int = 3, classes: Int = 10, blocksPerStage: [Int] = [2, 2, 2, 2]) {
            self.width = width
            self.inputChannels = inputChannels
            self.classes = classes
            self.blocksPerStage = blocksPerStage
        }
    }

    /// The architecture this network was built with.
    public let architecture: Architecture
    /// The stem convolution and BatchNorm.
    public let conv1: Conv2d, bn1: BatchNorm2d
    /// The residual blocks, `layer1.0` … `layer4.1` for ResNet18.
    public let blocks: [BasicBlock]
    /// The classifier.
    public let linear: Linear
    /// Every parameter in PyTorch `state_dict` order.
    public let parameters: [Parameter]
    /// Every BatchNorm running buffer in PyTorch `state_dict` order.
    public let buffers: [(name: String, tensor: Tensor)]

    private let pool = GlobalAveragePool()
    /// The column-matrix chunks, shared by every convolution.
    private let columns: Workspace
    /// Backward-pass gradients: blocks write `∂L/∂x` into `gradientA` and `gradientB` in
    /// turn (each reads its `∂L/∂out` from the other) and keep what lies in between in
    /// `temporary`, so the backward pass needs three activation-sized buffers in all.
    private let gradientA = Workspace(), gradientB = Workspace(), temporary = Workspace()

    /// A network with zero weights and fresh BatchNorms; call `initialise(seed:)` or load a
    /// state before use.
    public init(_ architecture: Architecture) {
        self.architecture = architecture
        let columns = Workspace()
        self.columns = columns
        let w = architecture.width
        conv1 = Conv2d(name: "conv1.weight", inChannels: architecture.inputChannels, outChannels: w, kernel: 3, stride: 1, padding: 1,
                       columns: columns)
        bn1 = BatchNorm2d(name: "bn1", channels: w, appliesReLU: true)
        var blocks: [BasicBlock] = []
        var inPlanes = w
        for (stage, count) in architecture.blocksPerStage.enumerated() {
            let planes = w << stage
            for index in 0..<count {
                let stride = index == 0 && stage > 0 ? 2 : 1
                blocks.append(BasicBlock(name: "layer\(stage + 1).\(index)", inPlanes: inPlanes, planes: planes, stride: stride,
                                         columns: columns))
                inPlanes = planes
            }
        }
        self.blocks = blocks
        linear = Linear(name: "linear", inFeatures: inPlanes, outFeatures: architecture.classes)

        var parameters = [conv1.weight, bn1.weight, bn1.bias]
        var buffers = bn1.buffers(prefix: "bn1")
        for block in blocks {
            for (conv, bn) in zip(block.convolutions, block.batchNorms) {
                parameters += [conv.weight, bn.weight, bn.bias]
                buffers += bn.buffers(prefix: bn.weight.layerName)
            }
        }
        parameters += [linear.weight, linear.bias]
        self.parameters = parameters
        self.buffers = buffers.map { (name: $0.0, tensor: $0.1) }
    }

    /// All convolutions in `state_dict` order (stem, then each block's conv1, conv2, shortcut).
    public var convolutions: [Conv2d] { [conv1] + blocks.flatMap(\.convolutions) }
    /// All BatchNorms in `state_dict` order.
    public var batchNorms: [BatchNorm2d] { [bn1] + blocks.flatMap(\.batchNorms) }
    /// The prunable tensors: every conv weight and the linear weight (21 of them).
    public var prunableParameters: [Parameter] { parameters.filter(\.prunable) }

    /// PyTorch's default initialisation, drawn from `seed`'s initialisation stream: conv and
    /// linear weights and the linear bias U(±1/√fan_in) (kaiming_uniform with a = √5), BN γ = 1,
    /// β = 0, running mean 0, running variance 1.
    public func initialise(seed: UInt64) {
        var random = RandomStream(seed: seed, stream: .initialisation)
        for parameter in parameters {
            if let bn = batchNorms.first(where: { $0.weight === parameter }) {
                bn.weight.value.fill(1)
            } else if batchNorms.contains(where: { $0.bias === parameter }) {
                parameter.value.fill(0)
            } else {
                let fanIn = parameter === linear.bias ? linear.inFeatures : parameter.shape.dropFirst().reduce(1, *)
                let bound = 1 / Float(fanIn).squareRoot()
                for i in 0..<parameter.value.count { parameter.value[i] = random.nextSymmetric(bound) }
            }
            parameter.momentum.fill(0)
        }
        for bn in batchNorms {
            bn.runningMean.fill(0)
            bn.runningVar.fill(1)
        }
    }

    /// The logits `[classes, N, 1, 1]` of a batch of images in channel-major layout.
    public func forward(_ input: FeatureMap, training: Bool) -> FeatureMap {
        var x = conv1.forward(input, normalisedBy: bn1, training: training)
        for block in blocks { x = block.forward(x, training: training) }
        let features = x
        return StepProfile.measure(.poolAndClassifier) { linear.forward(pool.forward(features)) }
    }

    /// Back-propagates `∂L/∂logits` of the last training forward into every parameter's gradient.
    public func backward(_ logitGradient: FeatureMap) {
        var dx = StepProfile.measure(.poolAndClassifier) { pool.backward(linear.backward(logitGradient)) }
        for (index, block) in blocks.enumerated().reversed() {
            dx = block.backward(dx, temporary: temporary, output: index % 2 == 0 ? gradientA : gradientB)
        }
        conv1.backwardWeightOnly(bn1.backward(dx, into: temporary))
    }

    /// The memory the network holds between steps, by part, in bytes.
    public struct MemoryUse: Sendable {
        /// Convolution and BatchNorm outputs: what the forward pass keeps for the backward pass.
        public var activations: Int
        /// The backward pass's three shared gradient buffers.
        public var gradients: Int
        /// The shared column-matrix chunk.
        public var columns: Int
        /// Weights, gradients, momenta and masks of every parameter, and the flipped kernels
        /// of the transposed convolutions.
        public var parameters: Int
    }

    /// What the network's buffers hold now (after a training step, at their peak sizes).
    public var memoryUse: MemoryUse {
        let float = MemoryLayout<Float>.stride
        let activations = convolutions.reduce(0) { $0 + $1.outputElements } + batchNorms.reduce(0) { $0 + $1.outputElements }
        let parameterElements = parameters.reduce(0) { $0 + $1.value.count * ($1.mask == nil ? 3 : 4) }
            + convolutions.reduce(0) { $0 + $1.kernelCopyElements }
        return MemoryUse(activations: activations * float,
                         gradients: (gradientA.capacity + gradientB.capacity + temporary.capacity) * float,
                         columns: columns.capacity * float, parameters: parameterElements * float)
    }

    /// The full state (parameters then buffers, each in `state_dict` order) by name.
    public var state: [(name: String, tensor: Tensor)] {
        parameters.map { (name: $0.name, tensor: $0.value) } + buffers
    }

    /// The number of parameters (weights, biases, BN γ/β; not running buffers).
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// The matrix products of one training step on `batch` images of `side`² pixels: each
    /// convolution's forward, weight-gradient and input-gradient products (the stem's input
    /// gradient is never formed), one entry per product at its largest chunk's shape; products
    /// that `DirectConvolution` computes are left out.
    public func gemmShapes(batch: Int, side: Int) -> [Conv2d.GEMMShape] {
        convolutionInputs(height: side, width: side).flatMap { conv, _, width in
            conv.gemmShapes(batch: batch, inputSide: width, inputGradientNeeded: conv !== conv1)
        }
    }

    /// Forward multiply-adds per image of `height`×`width` pixels (convolutions and linear).
    public func multiplyAddsPerImage(height: Int, width: Int) -> Int {
        convolutionInputs(height: height, width: width).reduce(linear.inFeatures * linear.outFeatures) { total, input in
            total + input.conv.multiplyAdds(height: input.height, width: input.width)
        }
    }

    /// Every convolution with the extents of the input it sees on `height`×`width` images, in
    /// `state_dict` order.
    public func convolutionInputs(height: Int, width: Int) -> [(conv: Conv2d, height: Int, width: Int)] {
        var result: [(conv: Conv2d, height: Int, width: Int)] = [(conv1, height, width)]
        var h = height, w = width
        for block in blocks {
            result.append((block.conv1, h, w))
            let outputHeight = block.conv1.outputExtent(h), outputWidth = block.conv1.outputExtent(w)
            result.append((block.conv2, outputHeight, outputWidth))
            if let shortcut = block.shortcut { result.append((shortcut.conv, h, w)) }
            h = outputHeight
            w = outputWidth
        }
        return result
    }
}
