import CBatchNorm

/// Batch normalisation over the channels of a feature map, with PyTorch semantics, and an
/// optional ReLU fused into the same pass (BN→ReLU is how the ResNet uses it twice a block).
///
/// Training normalises with the batch mean and the biased batch variance and updates the
/// running statistics with momentum 0.1 and the unbiased variance; evaluation normalises
/// with the running statistics.
public final class BatchNorm2d {
    /// The number of channels.
    public let channels: Int
    /// The scale γ (PyTorch `weight`) and shift β (PyTorch `bias`).
    public let weight: Parameter, bias: Parameter
    /// The running statistics (PyTorch buffers `running_mean`, `running_var`).
    public let runningMean: Tensor, runningVar: Tensor
    /// Whether a ReLU follows the affine transform in the same pass.
    public let appliesReLU: Bool
    /// The running-statistics momentum and the variance epsilon (PyTorch defaults).
    public let momentum: Float = 0.1, epsilon: Float = 1e-5

    private let output = Workspace()
    private let batchMean: UnsafeMutablePointer<Float>
    private let inverseStd: UnsafeMutablePointer<Float>
    /// The last training forward's `scale` and `shift` per channel: with a fused ReLU, the
    /// backward pass recomputes from them which values the ReLU passed instead of reading
    /// the output again.
    private let trainingScale: UnsafeMutablePointer<Float>, trainingShift: UnsafeMutablePointer<Float>
    private var savedInput: FeatureMap?

    /// A BatchNorm whose tensors are named `prefix.weight`, `prefix.bias`, `prefix.running_mean`,
    /// `prefix.running_var`; γ = 1, β = 0, mean 0, variance 1.
    public init(name prefix: String, channels: Int, appliesReLU: Bool) {
        self.channels = channels
        self.appliesReLU = appliesReLU
        weight = Parameter(name: prefix + ".weight", shape: [channels], prunable: false)
        weight.value.fill(1)
        bias = Parameter(name: prefix + ".bias", shape: [channels], prunable: false)
        runningMean = Tensor(shape: [channels])
        runningVar = Tensor(shape: [channels], repeating: 1)
        batchMean = .allocate(capacity: channels)
        batchMean.initialize(repeating: 0, count: channels)
        inverseStd = .allocate(capacity: channels)
        inverseStd.initialize(repeating: 0, count: channels)
        trainingScale = .allocate(capacity: channels)
        trainingScale.initialize(repeating: 0, count: channels)
        trainingShift = .allocate(capacity: channels)
        trainingShift.initialize(repeating: 0, count: channels)
    }

    deinit {
        batchMean.deallocate()
        inverseStd.deallocate()
        trainingScale.deallocate()
        trainingShift.deallocate()
    }

    /// The buffer names and tensors, in PyTorch `state_dict` order.
    public func buffers(prefix: String) -> [(String, Tensor)] {
        [(prefix + ".running_mean", runningMean), (prefix + ".running_var", runningVar)]
    }

    /// Normalises `x`; in training mode also updates the running statistics and keeps what
    /// `backward` needs: the input itself (its producer leaves it untouched until its next
    /// forward), the batch mean and 1/σ, so the normalised values need no buffer of their own.
    ///
    /// With `residual`, the output is `max(bn(x) + residual, 0)`: the residual block's sum and
    /// final ReLU in the same pass, rounded exactly as the three steps apart.
    ///
    /// `planeMoments`, in training, are `Σ x` and `Σ x²` of each plane (`2·(c·batch + n)` and
    /// the next), already summed by the convolution that wrote `x`: the batch statistics are
    /// then their totals, added image by image, instead of a pass over `x`.
    public func forward(_ x: FeatureMap, training: Bool, residual: FeatureMap? = nil,
                        planeMoments: UnsafePointer<Double>? = nil) -> FeatureMap {
        precondition(x.channels == channels, "\(weight.name): \(x.channels) channels, expected \(channels)")
        precondition(residual.map { $0.channels == channels && $0.plane == x.plane } ?? true, "\(weight.name): residual has the wrong shape")
        let skip = residual.map { UnsafePointer($0.data) }
        let y = x.sameShape(at: output.reserve(x.count))
        let m = x.plane
        savedInput = training ? x : nil
        let gamma = weight.value.pointer, beta = bias.value.pointer
        let mean = runningMean.pointer, variance = runningVar.pointer, batchMean = batchMean, invStd = inverseStd
        let trainingScale = trainingScale, trainingShift = trainingShift
        let relu = appliesReLU, eps = epsilon, mom = momentum
        StepProfile.measure(.batchNormForward) {
            Parallel.forEachRange(channels) { range in
                for c in range {
                    let row = UnsafePointer(x.data + c * m), out = y.data + c * m
                    let mu: Float, istd: Float
                    if training {
                        var sum = 0.0, sumOfSquares = 0.0
                        if let planeMoments {
                            for image in 0..<x.batch {
                                sum += planeMoments[2 * (c * x.batch + image)]
                                sumOfSquares += planeMoments[2 * (c * x.batch + image) + 1]
                            }
                        } else {
                            batch_norm_moments(row, m, &sum, &sumOfSquares)
                        }
                        let mean64 = sum / Double(m)
                        let squared = Swift.max(0, sumOfSquares - sum * mean64)
                        let biased = squared / Double(m)
                        let unbiased = m > 1 ? squared / Double(m - 1) : biased
                        mu = Float(mean64)
                        istd = Float(1 / (biased + Double(eps)).squareRoot())
                        batchMean[c] = mu
                        invStd[c] = istd
                        mean[c] = (1 - mom) * mean[c] + mom * Float(mean64)
                        variance[c] = (1 - mom) * variance[c] + mom * Float(unbiased)
                    } else {
                        mu = mean[c]
                        istd = Self.inverseStd(variance: variance[c], epsilon: eps)
                    }
                    let (scale, shift) = Self.affine(gamma: gamma[c], beta: beta[c], mean: mu, inverseStd: istd)
                    if training { (trainingScale[c], trainingShift[c]) = (scale, shift) }
                    batch_norm_apply(row, skip.map { $0 + c * m }, out, m, scale, shift, relu ? 1 : 0)
                }
            }
        }
        return y
    }

    /// Floats held by this layer between steps: its output.
    var outputElements: Int { output.capacity }

    /// Which values of the last training forward pass's output are positive: where its ReLU
    /// lets the gradient through. Tests compare two engines' gates with it, since a product
    /// summed in another order can round a value near zero to the other side.
    var trainingGate: [Bool] {
        guard let x = savedInput else { return [] }
        return UnsafeBufferPointer(start: output.pointer, count: x.count).map { $0 > 0 }
    }

    /// Sets whether the last training forward's ReLU lets the gradient through at `index` of
    /// its output, for tests that hold two engines to a float64 reference's gates where the
    /// reference's value lies within rounding of zero. Returns the value the ReLU saw, or,
    /// for a ReLU after this layer (the block's, gated by the output), what it passed.
    ///
    /// A fused ReLU's gate is recomputed from the input in the backward pass, so the input
    /// moves by as many units in the last place as it takes; the output follows.
    func forceTrainingGate(at index: Int, open: Bool) -> Float {
        guard let x = savedInput else { preconditionFailure("\(weight.name): no training forward to set a gate of") }
        let out = output.pointer + index
        guard appliesReLU else {
            let seen = out.pointee
            if (seen > 0) != open { out.pointee = open ? .leastNormalMagnitude : 0 }
            return seen
        }
        let c = index / x.plane, scale = trainingScale[c], shift = trainingShift[c]
        let seen = x.data[index] * scale + shift
        precondition(scale != 0, "\(weight.name): channel \(c) maps every value to \(shift); no input changes its gate")
        while (x.data[index] * scale + shift > 0) != open {
            x.data[index] = open == (scale > 0) ? x.data[index].nextUp : x.data[index].nextDown
        }
        out.pointee = Swift.max(x.data[index] * scale + shift, 0)
        return seen
    }

    /// `y = x·scale + shift` for one channel: the normalisation and γ, β in one multiply-add.
    @inline(__always)
    static func affine(gamma: Float, beta: Float, mean: Float, inverseStd: Float) -> (scale: Float, shift: Float) {
        (gamma * inverseStd, beta - mean * gamma * inverseStd)
    }

    @inline(__always)
    static func inverseStd(variance: Float, epsilon: Float) -> Float { 1 / (variance + epsilon).squareRoot() }

    /// The evaluation-mode map of every channel from the running statistics, the very values
    /// `forward(_:training: false)` computes, written to `scale` and `shift` (a convolution
    /// applies them as its output leaves the registers: `Conv2d.forward(_:normalisedBy:…)`).
    func evaluationAffine(scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>) {
        let gamma = weight.value.pointer, beta = bias.value.pointer, mean = runningMean.pointer, variance = runningVar.pointer
        for c in 0..<channels {
            (scale[c], shift[c]) = Self.affine(gamma: gamma[c], beta: beta[c], mean: mean[c],
                                               inverseStd: Self.inverseStd(variance: variance[c], epsilon: epsilon))
        }
    }

    /// Given `∂L/∂y` of the last training forward, writes `∂L/∂γ`, `∂L/∂β` and returns `∂L/∂x`,
    /// stored in `gradient`.
    ///
    /// `gate`, when given, is the output of a ReLU that follows this layer outside it (the
    /// residual block's): the incoming gradient is taken as zero where `gate` is not positive,
    /// which saves the block a separate masking pass. A fused ReLU gates where it passed the
    /// value, recomputed from the input (the same bits as reading this layer's output).
    public func backward(_ dy: FeatureMap, gatedBy gate: UnsafePointer<Float>? = nil, into gradient: Workspace) -> FeatureMap {
        guard let x = savedInput else { preconditionFailure("\(weight.name): backward before a training forward") }
        let m = dy.plane
        let dx = dy.sameShape(at: gradient.reserve(dy.count))
        precondition(!(appliesReLU && gate != nil), "\(weight.name): a BatchNorm with its own ReLU takes no gate")
        let gamma = weight.value.pointer, dGamma = weight.gradient.pointer, dBeta = bias.gradient.pointer
        let batchMean = batchMean, invStd = inverseStd, trainingScale = trainingScale, trainingShift = trainingShift
        let rectified: Int32 = appliesReLU ? 1 : 0
        StepProfile.measure(.batchNormBackward) {
            Parallel.forEachRange(channels) { range in
                for c in range {
                    let g = UnsafePointer(dy.data + c * m), input = UnsafePointer(x.data + c * m)
                    var gateRow = batch_norm_gate(output: gate.map { $0 + c * m }, scale: trainingScale[c], shift: trainingShift[c],
                                                  rectified: rectified)
                    let out = dx.data + c * m
                    let mu = batchMean[c], istd = invStd[c]
                    var sum = 0.0, dotCentered = 0.0
                    batch_norm_gradient_sums(g, &gateRow, input, mu, m, &sum, &dotCentered)
                    let sumDyXhat = dotCentered * Double(istd)
                    dGamma[c] = Float(sumDyXhat)
                    dBeta[c] = Float(sum)
                    // dx = γ/(σ·M) · (M·g − Σg − x̂·Σg·x̂), written as a·g + b·x + c per element.
                    let scale = gamma[c] * istd / Float(m)
                    let a = scale * Float(m), b = -scale * istd * Float(sumDyXhat)
                    let shift = -scale * Float(sum) - b * mu
                    batch_norm_input_gradient(g, &gateRow, input, out, m, a, b, shift)
                }
            }
        }
        return dx
    }
}
