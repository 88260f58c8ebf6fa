/// A fully connected layer `y = W·x + b` on features stored feature-major (`[in, N]`, the
/// channel-major layout of a 1×1 feature map).
public final class Linear {
    /// Input and output features.
    public let inFeatures: Int, outFeatures: Int
    /// The weight `[out, in]` and bias `[out]`, named like PyTorch's.
    public let weight: Parameter, bias: Parameter
    private let output = Workspace()
    private let inputGradient = Workspace()
    private var savedInput: FeatureMap?

    /// A zero-initialised layer whose tensors are `prefix.weight` and `prefix.bias`.
    public init(name prefix: String, inFeatures: Int, outFeatures: Int) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(name: prefix + ".weight", shape: [outFeatures, inFeatures], prunable: true)
        bias = Parameter(name: prefix + ".bias", shape: [outFeatures], prunable: false)
    }

    /// `y[o, n] = Σ_i W[o, i]·x[i, n] + b[o]`.
    public func forward(_ x: FeatureMap) -> FeatureMap {
        precondition(x.channels == inFeatures && x.height == 1 && x.width == 1, "\(weight.name): expected [\(inFeatures), N, 1, 1]")
        savedInput = x
        let n = x.batch
        let y = FeatureMap(data: output.reserve(outFeatures * n), channels: outFeatures, batch: n, height: 1, width: 1)
        for o in 0..<outFeatures {
            (y.data + o * n).update(repeating: bias.value[o], count: n)
        }
        BLAS.gemm(.none, .none, m: outFeatures, n: n, k: inFeatures,
                  a: weight.value.pointer, lda: inFeatures, b: x.data, ldb: n, beta: 1, c: y.data, ldc: n)
        return y
    }

    /// Writes `∂L/∂W`, `∂L/∂b` and returns `∂L/∂x`.
    public func backward(_ dy: FeatureMap) -> FeatureMap {
        guard let x = savedInput else { preconditionFailure("\(weight.name): backward before forward") }
        let n = x.batch
        BLAS.gemm(.none, .transpose, m: outFeatures, n: inFeatures, k: n,
                  a: dy.data, lda: n, b: x.data, ldb: n, c: weight.gradient.pointer, ldc: inFeatures)
        for o in 0..<outFeatures {
            bias.gradient[o] = Float(sum(dy.data + o * n, count: n))
        }
        let dx = x.sameShape(at: inputGradient.reserve(x.count))
        BLAS.gemm(.transpose, .none, m: inFeatures, n: n, k: outFeatures,
                  a: weight.value.pointer, lda: inFeatures, b: dy.data, ldb: n, c: dx.data, ldc: n)
        return dx
    }
}
