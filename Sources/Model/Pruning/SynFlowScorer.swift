/// SynFlow's data-free saliency (Tanaka et al. 2020, the official algorithm), in float64.
///
/// The network is linearised: every weight, bias and BatchNorm value is replaced by its
/// absolute value, BatchNorm is in evaluation mode (at initialisation a multiply by
/// 1/√(1+ε)), the input is a single all-ones image, and R = Σ logits. The score of a weight
/// is `|∂R/∂w · w|` with the current mask applied in the forward pass, so pruned weights score 0.
/// Float64 throughout: R reaches 1e22 at width 64, and exact ranks matter at the threshold.
public final class SynFlowScorer {
    private let network: ResNet18
    private let side: Int
    private var weights: [String: [Double]] = [:]

    /// A scorer for `network`'s current weights and BatchNorm state, for `side`×`side` inputs.
    public init(network: ResNet18, inputSide: Int) {
        self.network = network
        self.side = inputSide
        for parameter in network.parameters where parameter.prunable {
            weights[parameter.name] = parameter.value.array.map { abs(Double($0)) }
        }
    }

    /// The scores of every prunable tensor under `masks` (a missing mask means all ones), and R.
    public func scores(masks: [String: [Double]] = [:]) -> (r: Double, scores: [String: [Double]]) {
        var effective = weights
        for (name, mask) in masks { effective[name] = effective[name].map { zip($0, mask).map { $0 * $1 } } }
        var gradients: [String: [Double]] = [:]

        // Forward, keeping what backward needs.
        var x = Plane(channels: network.architecture.inputChannels, side: side, repeating: 1)
        let stem = Convolution(network.conv1, effective)
        let stemInput = x
        x = stem.forward(x)
        let stemNorm = Affine(network.bn1)
        x = stemNorm.forward(x).relu()
        let stemOutput = x
        var records: [(block: BasicBlock, input: Plane, a1: Plane, h1: Plane, a2: Plane, out: Plane, skip: Plane?)] = []
        for block in network.blocks {
            let input = x
            let a1 = Affine(block.bn1).forward(Convolution(block.conv1, effective).forward(input))
            let h1 = a1.relu()
            let a2 = Affine(block.bn2).forward(Convolution(block.conv2, effective).forward(h1))
            let skip = block.shortcut.map { Affine($0.bn).forward(Convolution($0.conv, effective).forward(input)) }
            let out = a2.adding(skip ?? input).relu()
            records.append((block, input, a1, h1, a2, out, skip))
            x = out
        }
        let area = Double(x.side * x.side)
        let pooled = (0..<x.channels).map { c in x.values[(c * x.side * x.side)..<((c + 1) * x.side * x.side)].reduce(0, +) / area }
        let linear = network.linear
        let w = effective[linear.weight.name]!
        let bias = linear.bias.value.array.map { abs(Double($0)) }
        var r = 0.0
        for o in 0..<linear.outFeatures {
            var logit = bias[o]
            for i in 0..<linear.inFeatures { logit += w[o * linear.inFeatures + i] * pooled[i] }
            r += logit
        }

        // Backward from ∂R/∂logit = 1.
        gradients[linear.weight.name] = (0..<(linear.outFeatures * linear.inFeatures)).map { pooled[$0 % linear.inFeatures] }
        var dPooled = [Double](repeating: 0, count: linear.inFeatures)
        for o in 0..<linear.outFeatures { for i in 0..<linear.inFeatures { dPooled[i] += w[o * linear.inFeatures + i] } }
        var dx = Plane(channels: x.channels, side: x.side, repeating: 0)
        for c in 0..<x.channels { for i in 0..<(x.side * x.side) { dx.values[c * x.side * x.side + i] = dPooled[c] / area } }
        for record in records.reversed() {
            let dz = dx.gated(by: record.out)
            let block = record.block
            var dInput: Plane
            let conv2 = Convolution(block.conv2, effective)
            let dh1 = conv2.backward(Affine(block.bn2).backward(dz), input: record.h1, gradient: &gradients)
            let conv1 = Convolution(block.conv1, effective)
            dInput = conv1.backward(Affine(block.bn1).backward(dh1.gated(by: record.a1)), input: record.input, gradient: &gradients)
            if let shortcut = block.shortcut {
                let convS = Convolution(shortcut.conv, effective)
                dInput = dInput.adding(convS.backward(Affine(shortcut.bn).backward(dz), input: record.input, gradient: &gradients))
            } else {
                dInput = dInput.adding(dz)
            }
            dx = dInput
        }
        _ = stem.backward(stemNorm.backward(dx.gated(by: stemOutput)), input: stemInput, gradient: &gradients, inputGradientNeeded: false)

        var result: [String: [Double]] = [:]
        for (name, gradient) in gradients {
            result[name] = zip(gradient, effective[name] ?? []).map { abs($0 * $1) }
        }
        return (r, result)
    }

    /// One image's feature maps, `[channel][row][column]`, in float64.
    struct Plane {
        var channels: Int, side: Int
        var values: [Double]

        init(channels: Int, side: Int, repeating value: Double) {
            self.channels = channels
            self.side = side
            values = [Double](repeating: value, count: channels * side * side)
        }

        func relu() -> Plane { var copy = self; copy.values = values.map { Swift.max($0, 0) }; return copy }
        func adding(_ other: Plane) -> Plane { var copy = self; copy.values = zip(values, other.values).map(+); return copy }
        /// ReLU′ with ReLU′(0) = 0: keeps the gradient where `output` is positive.
        func gated(by output: Plane) -> Plane {
            var copy = self
            copy.values = zip(values, output.values).map { $1 > 0 ? $0 : 0 }
            return copy
        }
    }

    /// Evaluation-mode BatchNorm on absolute values: y = |γ|·(x − |μ|)/√(|σ²| + ε) + |β|.
    struct Affine {
        var scale: [Double], shift: [Double]

        init(_ bn: BatchNorm2d) {
            let scale = (0..<bn.channels).map { c in
                abs(Double(bn.weight.value[c])) / (abs(Double(bn.runningVar[c])) + Double(bn.epsilon)).squareRoot()
            }
            self.scale = scale
            shift = (0..<bn.channels).map { c in abs(Double(bn.bias.value[c])) - abs(Double(bn.runningMean[c])) * scale[c] }
        }

        func forward(_ x: Plane) -> Plane {
            var y = x
            let area = x.side * x.side
            for c in 0..<x.channels { for i in 0..<area { y.values[c * area + i] = x.values[c * area + i] * scale[c] + shift[c] } }
            return y
        }

        func backward(_ dy: Plane) -> Plane {
            var dx = dy
            let area = dy.side * dy.side
            for c in 0..<dy.channels { for i in 0..<area { dx.values[c * area + i] *= scale[c] } }
            return dx
        }
    }

    /// A convolution in float64 via im2col and `dgemm`.
    struct Convolution {
        let conv: Conv2d
        let weight: [Double]

        init(_ conv: Conv2d, _ weights: [String: [Double]]) {
            self.conv = conv
            weight = weights[conv.weight.name]!
        }

        /// Calls `body(columnIndex, inputIndex)` for every column-matrix entry that reads a real
        /// input value (not padding): the one index map that im2col and its adjoint share.
        private func forEachTap(channels: Int, side: Int, _ body: (Int, Int) -> Void) {
            let k = conv.kernel, s = conv.stride, p = conv.padding, outSide = conv.outputExtent(side)
            let count = outSide * outSide
            for r in 0..<(channels * k * k) {
                let c = r / (k * k), ki = (r / k) % k, kj = r % k
                for oy in 0..<outSide {
                    let iy = oy * s - p + ki
                    guard iy >= 0 && iy < side else { continue }
                    for ox in 0..<outSide {
                        let ix = ox * s - p + kj
                        if ix >= 0 && ix < side { body(r * count + oy * outSide + ox, (c * side + iy) * side + ix) }
                    }
                }
            }
        }

        private func columns(_ x: Plane) -> (rows: Int, side: Int, col: [Double]) {
            let rows = x.channels * conv.kernel * conv.kernel, outSide = conv.outputExtent(x.side)
            var col = [Double](repeating: 0, count: rows * outSide * outSide)
            forEachTap(channels: x.channels, side: x.side) { column, input in col[column] = x.values[input] }
            return (rows, outSide, col)
        }

        func forward(_ x: Plane) -> Plane {
            let (rows, outSide, col) = columns(x)
            var y = Plane(channels: conv.outChannels, side: outSide, repeating: 0)
            let count = outSide * outSide
            BLAS.gemm(.none, .none, m: conv.outChannels, n: count, k: rows, a: weight, lda: rows, b: col, ldb: count, c: &y.values, ldc: count)
            return y
        }

        /// Adds ∂R/∂W to `gradient[name]` and returns ∂R/∂x.
        func backward(_ dy: Plane, input x: Plane, gradient: inout [String: [Double]], inputGradientNeeded: Bool = true) -> Plane {
            let (rows, outSide, col) = columns(x)
            let count = outSide * outSide
            var dw = [Double](repeating: 0, count: conv.outChannels * rows)
            BLAS.gemm(.none, .transpose, m: conv.outChannels, n: rows, k: count, a: dy.values, lda: count, b: col, ldb: count, c: &dw, ldc: rows)
            gradient[conv.weight.name] = dw
            guard inputGradientNeeded else { return x }
            var dcol = [Double](repeating: 0, count: rows * count)
            BLAS.gemm(.transpose, .none, m: rows, n: count, k: conv.outChannels, a: weight, lda: rows, b: dy.values, ldb: count, c: &dcol, ldc: count)
            var dx = Plane(channels: x.channels, side: x.side, repeating: 0)
            forEachTap(channels: x.channels, side: x.side) { column, input in dx.values[input] += dcol[column] }
            return dx
        }
    }
}
