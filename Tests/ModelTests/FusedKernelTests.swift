import Testing
@testable import Model

/// The element-wise passes that are fused or vectorised, against the separate steps they
/// replace, on random data: bit for bit, since the order of operations is unchanged.
@Suite struct FusedKernelTests {
    /// bn2's residual sum and ReLU in its own pass equal BatchNorm, then the sum, then the ReLU.
    @Test(arguments: [true, false])
    func batchNormWithResidualEqualsTheThreeStepsApart(training: Bool) {
        let x = GradientCheckTests.Map(6, 3, 5, 7, seed: 21, scale: 2), skip = GradientCheckTests.Map(6, 3, 5, 7, seed: 22)
        func layer() -> BatchNorm2d {
            let bn = BatchNorm2d(name: "bn", channels: 6, appliesReLU: false)
            GradientCheckTests.randomise(bn.weight, seed: 23)
            GradientCheckTests.randomise(bn.bias, seed: 24)
            for c in 0..<6 { bn.runningVar[c] = 0.5 + Float(c) / 4 }
            return bn
        }
        let fusedLayer = layer(), plainLayer = layer()
        let fused = fusedLayer.forward(x.map, training: training, residual: skip.map)
        let plain = plainLayer.forward(x.map, training: training)
        // The outputs live in the layers' workspaces.
        defer { withExtendedLifetime((fusedLayer, plainLayer)) {} }
        for i in 0..<plain.count {
            #expect(fused.data[i].bitPattern == Swift.max(plain.data[i] + skip.map.data[i], 0).bitPattern, "element \(i)")
        }
    }

    @Test func residualGradientEqualsTheScalarLoop() {
        let count = 1_000
        let dy = GradientCheckTests.Map(1, 1, 1, count, seed: 31), output = GradientCheckTests.Map(1, 1, 1, count, seed: 32)
        let start = GradientCheckTests.Map(1, 1, 1, count, seed: 33)
        for i in stride(from: 0, to: count, by: 7) { output.tensor[i] = 0 }  // a closed gate at exactly zero
        var vectorised = start.tensor.array, scalar = start.tensor.array
        ReLU.accumulateBackward(dy.tensor.pointer, output: output.tensor.pointer, into: &vectorised, count: count)
        for i in 0..<count { scalar[i] += output.tensor[i] > 0 ? dy.tensor[i] : 0 }
        #expect(vectorised.map(\.bitPattern) == scalar.map(\.bitPattern))

        var small: [Float] = [1, 1, 1, 1]
        ReLU.accumulateBackward([5, 6, 7, 8], output: [0, -1, 0.75, 0.25], into: &small, count: 4)
        #expect(small == [1, 1, 8, 9])
    }
}
