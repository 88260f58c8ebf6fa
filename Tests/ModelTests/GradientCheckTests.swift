import Testing
@testable import Model

/// Central finite differences against every layer's backward pass, on small shapes. The
/// scalar checked is L = Σ y ⊙ r for a fixed random r, whose gradient with respect to y is r.
@Suite struct GradientCheckTests {
    /// A random feature map that owns its memory.
    final class Map {
        let tensor: Tensor
        let map: FeatureMap
        init(_ c: Int, _ n: Int, _ h: Int, _ w: Int, seed: UInt64, scale: Float = 1) {
            var random = RandomStream(seed: seed, stream: .synthetic)
            tensor = Tensor(shape: [c, n, h, w])
            for i in 0..<tensor.count { tensor[i] = random.nextSymmetric(scale) }
            map = FeatureMap(data: tensor.pointer, channels: c, batch: n, height: h, width: w)
        }
    }

    static func randomise(_ parameter: Parameter, seed: UInt64, scale: Float = 0.5) {
        var random = RandomStream(seed: seed, stream: .initialisation)
        for i in 0..<parameter.value.count { parameter.value[i] = random.nextSymmetric(scale) }
    }

    static func projection(_ y: FeatureMap) -> Double {
        var random = RandomStream(seed: 99, stream: .synthetic)
        var total = 0.0
        for i in 0..<y.count { total += Double(y.data[i]) * Double(random.nextSymmetric(1)) }
        return total
    }

    /// The gradient map r of `projection`, in memory owned by the returned tensor.
    static func projectionGradient(like y: FeatureMap) -> (Tensor, FeatureMap) {
        var random = RandomStream(seed: 99, stream: .synthetic)
        let r = Tensor(shape: [y.count])
        for i in 0..<y.count { r[i] = random.nextSymmetric(1) }
        return (r, y.sameShape(at: r.pointer))
    }

    /// Compares `analytic` with finite differences of `loss` over the entries of `values`;
    /// returns the relative error ‖a − fd‖/‖fd‖.
    static func check(_ values: UnsafeMutablePointer<Float>, count: Int, analytic: [Float], epsilon: Float = 1e-2, loss: () -> Double) -> Double {
        var numeric = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let saved = values[i]
            values[i] = saved + epsilon
            let up = loss()
            values[i] = saved - epsilon
            let down = loss()
            values[i] = saved
            numeric[i] = Float((up - down) / Double(2 * epsilon))
        }
        return relativeError(analytic, numeric)
    }

    @Test(arguments: [(3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0), (3, 2, 0), (5, 1, 2)])
    func convolution(kernel: Int, stride: Int, padding: Int) {
        let conv = Conv2d(name: "c.weight", inChannels: 3, outChannels: 4, kernel: kernel, stride: stride, padding: padding)
        Self.randomise(conv.weight, seed: 1)
        let x = Map(3, 2, 5, 6, seed: 2)
        let scratch = Workspace()
        let loss = { Self.projection(conv.forward(x.map)) }
        let y = conv.forward(x.map)
        let (r, dy) = Self.projectionGradient(like: y)
        // `dx` lives in `scratch`, which must outlive the copy.
        let dxCopy = withExtendedLifetime(scratch) {
            let dx = conv.backward(dy, into: scratch)
            return Array(UnsafeBufferPointer(start: dx.data, count: dx.count))
        }
        let dw = conv.weight.gradient.array
        _ = r
        #expect(Self.check(conv.weight.value.pointer, count: conv.weight.value.count, analytic: dw, loss: loss) < 1e-3)
        #expect(Self.check(x.tensor.pointer, count: x.tensor.count, analytic: dxCopy, loss: loss) < 1e-3)
    }

    @Test(arguments: [false, true])
    func batchNorm(relu: Bool) {
        let bn = BatchNorm2d(name: "bn", channels: 3, appliesReLU: relu)
        Self.randomise(bn.weight, seed: 3)
        Self.randomise(bn.bias, seed: 4)
        let x = Map(3, 4, 3, 3, seed: 5, scale: 2)
        let loss = { Self.projection(bn.forward(x.map, training: true)) }
        let y = bn.forward(x.map, training: true)
        let (r, dy) = Self.projectionGradient(like: y)
        let gradient = Workspace()
        let dxCopy = withExtendedLifetime(gradient) {
            let dx = bn.backward(dy, into: gradient)
            return Array(UnsafeBufferPointer(start: dx.data, count: dx.count))
        }
        let (dGamma, dBeta) = (bn.weight.gradient.array, bn.bias.gradient.array)
        _ = r
        #expect(Self.check(x.tensor.pointer, count: x.tensor.count, analytic: dxCopy, epsilon: 1e-3, loss: loss) < 5e-3)
        #expect(Self.check(bn.weight.value.pointer, count: 3, analytic: dGamma, epsilon: 1e-3, loss: loss) < 5e-3)
        #expect(Self.check(bn.bias.value.pointer, count: 3, analytic: dBeta, epsilon: 1e-3, loss: loss) < 5e-3)
    }

    @Test func linearAndPool() {
        let linear = Linear(name: "fc", inFeatures: 4, outFeatures: 3)
        Self.randomise(linear.weight, seed: 6)
        Self.randomise(linear.bias, seed: 7)
        let pool = GlobalAveragePool()
        let x = Map(4, 2, 3, 3, seed: 8)
        let loss = { Self.projection(linear.forward(pool.forward(x.map))) }
        let y = linear.forward(pool.forward(x.map))
        let (r, dy) = Self.projectionGradient(like: y)
        let dx = pool.backward(linear.backward(dy))
        let dxCopy = Array(UnsafeBufferPointer(start: dx.data, count: dx.count))
        let (dw, db) = (linear.weight.gradient.array, linear.bias.gradient.array)
        _ = r
        #expect(Self.check(x.tensor.pointer, count: x.tensor.count, analytic: dxCopy, loss: loss) < 1e-3)
        #expect(Self.check(linear.weight.value.pointer, count: 12, analytic: dw, loss: loss) < 1e-3)
        #expect(Self.check(linear.bias.value.pointer, count: 3, analytic: db, loss: loss) < 1e-3)
    }

    @Test func crossEntropy() {
        let logits = Map(5, 3, 1, 1, seed: 9, scale: 3)
        let labels: [Int32] = [4, 0, 2]
        let ce = CrossEntropy()
        let loss = { labels.withUnsafeBufferPointer { ce.forward(logits.map, labels: $0).loss } }
        _ = loss()
        let grad = ce.backward(like: logits.map)
        let analytic = Array(UnsafeBufferPointer(start: grad.data, count: grad.count))
        #expect(Self.check(logits.tensor.pointer, count: 15, analytic: analytic, epsilon: 1e-3, loss: loss) < 1e-3)
    }

    /// The residual block's wiring (both shortcut kinds). A difference quotient that straddles
    /// a ReLU kink is wrong by O(1) however small the step, and with a few hundred outputs
    /// some always do; so the BN shifts put every ReLU in its linear part here (the ReLU
    /// masks are checked by `batchNorm(relu: true)` and `addReLU`).
    @Test(arguments: [(4, 1), (2, 2)])
    func residualBlock(inPlanes: Int, stride: Int) {
        let block = BasicBlock(name: "b", inPlanes: inPlanes, planes: 4, stride: stride)
        for (index, conv) in block.convolutions.enumerated() { Self.randomise(conv.weight, seed: 20 + UInt64(index)) }
        block.bn1.bias.value.fill(6)
        block.bn2.bias.value.fill(6)
        let x = Map(inPlanes, 3, 4, 4, seed: 10)
        let scratch = Workspace()
        let loss = { Self.projection(block.forward(x.map, training: true)) }
        let y = block.forward(x.map, training: true)
        let (r, dy) = Self.projectionGradient(like: y)
        let dxCopy = withExtendedLifetime(scratch) {
            let dx = block.backward(dy, temporary: Workspace(), output: scratch)
            return Array(UnsafeBufferPointer(start: dx.data, count: dx.count))
        }
        let dw = block.conv1.weight.gradient.array
        _ = r
        #expect(Self.check(x.tensor.pointer, count: x.tensor.count, analytic: dxCopy, loss: loss) < 1e-3)
        #expect(Self.check(block.conv1.weight.value.pointer, count: block.conv1.weight.value.count, analytic: dw, loss: loss) < 1e-3)
    }
}
