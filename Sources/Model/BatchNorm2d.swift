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
    private let normalized = Workspace()
    private let inputGradient = Workspace()
    private let inverseStd: UnsafeMutablePointer<Float>

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
        inverseStd = .allocate(capacity: channels)
        inverseStd.initialize(repeating: 0, count: channels)
    }

    deinit { inverseStd.deallocate() }

    /// The buffer names and tensors, in PyTorch `state_dict` order.
    public func buffers(prefix: String) -> [(String, Tensor)] {
        [(prefix + ".running_mean", runningMean), (prefix + ".running_var", runningVar)]
    }

    /// Normalises `x`; in training mode also updates the running statistics and keeps what
    /// `backward` needs.
    public func forward(_ x: FeatureMap, training: Bool) -> FeatureMap {
        precondition(x.channels == channels, "\(weight.name): \(x.channels) channels, expected \(channels)")
        let y = x.sameShape(at: output.reserve(x.count))
        let m = x.plane
        let xhat = training ? normalized.reserve(x.count) : nil
        let gamma = weight.value.pointer, beta = bias.value.pointer
        let mean = runningMean.pointer, variance = runningVar.pointer, invStd = inverseStd
        let relu = appliesReLU, eps = epsilon, mom = momentum
        Parallel.forEachRange(channels) { range in
            for c in range {
                let row = UnsafePointer(x.data + c * m), out = y.data + c * m
                let mu: Float, istd: Float
                if let xhat {
                    let batchMean = sum(row, count: m) / Double(m)
                    let squared = sumOfSquaredDeviations(row, count: m, from: batchMean)
                    let biased = squared / Double(m)
                    let unbiased = m > 1 ? squared / Double(m - 1) : biased
                    mu = Float(batchMean)
                    istd = Float(1 / (biased + Double(eps)).squareRoot())
                    invStd[c] = istd
                    mean[c] = (1 - mom) * mean[c] + mom * Float(batchMean)
                    variance[c] = (1 - mom) * variance[c] + mom * Float(unbiased)
                    let normalizedRow = xhat + c * m
                    let g = gamma[c], b = beta[c]
                    for i in 0..<m {
                        let n = (row[i] - mu) * istd
                        normalizedRow[i] = n
                        let v = g * n + b
                        out[i] = relu ? Swift.max(v, 0) : v
                    }
                } else {
                    mu = mean[c]
                    istd = 1 / (variance[c] + eps).squareRoot()
                    let scale = gamma[c] * istd, shift = beta[c] - mu * gamma[c] * istd
                    for i in 0..<m {
                        let v = row[i] * scale + shift
                        out[i] = relu ? Swift.max(v, 0) : v
                    }
                }
            }
        }
        return y
    }

    /// Given `∂L/∂y` of the last training forward, writes `∂L/∂γ`, `∂L/∂β` and returns `∂L/∂x`.
    public func backward(_ dy: FeatureMap) -> FeatureMap {
        let m = dy.plane
        let dx = dy.sameShape(at: inputGradient.reserve(dy.count))
        let y = UnsafePointer(output.pointer), xhat = UnsafePointer(normalized.pointer)
        let gamma = weight.value.pointer, dGamma = weight.gradient.pointer, dBeta = bias.gradient.pointer
        let invStd = inverseStd, relu = appliesReLU
        Parallel.forEachRange(channels) { range in
            for c in range {
                let g = UnsafePointer(dy.data + c * m), yRow = y + c * m, xhatRow = xhat + c * m
                let out = dx.data + c * m
                if relu {
                    // The ReLU's gradient is staged in dx, which is overwritten below anyway.
                    for i in 0..<m { out[i] = yRow[i] > 0 ? g[i] : 0 }
                }
                let upstream = relu ? UnsafePointer(out) : g
                let sumDy = sum(upstream, count: m)
                let sumDyXhat = dot(upstream, xhatRow, count: m)
                dGamma[c] = Float(sumDyXhat)
                dBeta[c] = Float(sumDy)
                let scale = gamma[c] * invStd[c] / Float(m)
                let meanTerm = Float(sumDy), xhatTerm = Float(sumDyXhat), count = Float(m)
                for i in 0..<m {
                    out[i] = scale * (count * upstream[i] - meanTerm - xhatRow[i] * xhatTerm)
                }
            }
        }
        return dx
    }
}
