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

    /// A BatchNorm with its own ReLU gates its backward pass where `x·scale + shift > 0`,
    /// recomputed from its input: bit for bit what gating by its output gives (a plain
    /// BatchNorm whose rectified output is passed as the gate), including a channel whose
    /// values are all exactly zero before the ReLU, and rows with a scalar tail.
    @Test func reluBatchNormGatesLikeItsOutput() {
        let x = GradientCheckTests.Map(6, 3, 5, 7, seed: 25, scale: 2), dy = GradientCheckTests.Map(6, 3, 5, 7, seed: 26)
        func layer(relu: Bool) -> BatchNorm2d {
            let bn = BatchNorm2d(name: "bn", channels: 6, appliesReLU: relu)
            GradientCheckTests.randomise(bn.weight, seed: 27)
            GradientCheckTests.randomise(bn.bias, seed: 28)
            bn.weight.value[5] = 0
            bn.bias.value[5] = 0
            return bn
        }
        let rectifying = layer(relu: true), plain = layer(relu: false)
        let rectified = rectifying.forward(x.map, training: true)
        let output = plain.forward(x.map, training: true)
        let gate = (0..<output.count).map { Swift.max(output.data[$0], 0) }
        #expect((0..<output.count).allSatisfy { rectified.data[$0].bitPattern == gate[$0].bitPattern })
        #expect(gate.contains(0) && gate.contains { $0 > 0 })
        let own = Workspace(), given = Workspace()
        let fromInput = rectifying.backward(dy.map, into: own)
        let fromOutput = gate.withUnsafeBufferPointer { plain.backward(dy.map, gatedBy: $0.baseAddress, into: given) }
        defer { withExtendedLifetime((rectifying, plain)) {} }
        #expect((0..<fromInput.count).allSatisfy { fromInput.data[$0].bitPattern == fromOutput.data[$0].bitPattern })
        #expect(rectifying.weight.gradient.array.map(\.bitPattern) == plain.weight.gradient.array.map(\.bitPattern))
        #expect(rectifying.bias.gradient.array.map(\.bitPattern) == plain.bias.gradient.array.map(\.bitPattern))
    }

    /// In evaluation a direct convolution applies the BatchNorm after it (its ReLU, or the
    /// residual sum and ReLU) as each output row leaves the registers: bit for bit the two
    /// steps apart, on every vector level this CPU has, with NaN kept and −0 made +0 as the
    /// separate ReLU does. Arguments (residual, in, out, side): the row kernel on 14 columns,
    /// and with AVX-512 the pixel kernels on 16 and 8 (two 16-channel blocks and a remainder of 4
    /// on the row kernel).
    @Test(arguments: [(false, 5, 6, 14), (true, 5, 6, 14), (false, 32, 36, 16), (true, 32, 36, 16), (false, 24, 36, 8), (true, 24, 36, 8)])
    func evaluationConvolutionWithBatchNormEqualsTheTwoStepsApart(_ shape: (Bool, Int, Int, Int)) throws {
        let (residual, c, o, side) = shape
        try #require(Conv2d.availableDirectLevel > 0, "no AVX2 on this CPU: the fused pass never runs")
        let x = GradientCheckTests.Map(c, 3, side, side, seed: 41, scale: 2), skip = GradientCheckTests.Map(o, 3, side, side, seed: 42)
        x.tensor[17] = .nan
        func layers() -> (Conv2d, BatchNorm2d) {
            let conv = Conv2d(name: "conv.weight", inChannels: c, outChannels: o, kernel: 3, stride: 1, padding: 1)
            GradientCheckTests.randomise(conv.weight, seed: 43)
            let bn = Self.evaluationBatchNorm(channels: o, appliesReLU: !residual)
            bn.weight.value[o - 1] = 0  // a channel of exact zeros: bias − mean·0 may give −0 before the ReLU
            bn.bias.value[o - 1] = -0.0
            bn.runningMean[o - 1] = 0
            return (conv, bn)
        }
        for level in 1...Conv2d.availableDirectLevel {
            let (fusedConv, fusedBN) = layers(), (plainConv, plainBN) = layers()
            fusedConv.directLevel = level
            plainConv.directLevel = level
            guard fusedConv.runsDirect(width: side) else { continue }  // with AVX2, 8 columns stay on GEMM
            let fused = fusedConv.forward(x.map, normalisedBy: fusedBN, training: false, residual: residual ? skip.map : nil)
            let plain = plainBN.forward(plainConv.forward(x.map), training: false, residual: residual ? skip.map : nil)
            defer { withExtendedLifetime((fusedConv, fusedBN, plainConv, plainBN)) {} }
            var differing = 0
            for i in 0..<plain.count where fused.data[i].bitPattern != plain.data[i].bitPattern { differing += 1 }
            #expect(differing == 0, "level \(level): \(differing) of \(plain.count) outputs differ")
            #expect((0..<plain.count).contains { plain.data[$0].isNaN }, "the NaN input reaches the output")
        }
    }

    /// In training on AVX-512 a direct convolution sums each output plane's values and squares
    /// as its rows are stored, and the BatchNorm after it takes its batch statistics from those
    /// sums: the output and the running statistics equal the two steps apart (the BatchNorm's
    /// own pass over the output) to float rounding, and the bits do not depend on the threads.
    /// (stride, in, out, side): the row kernel on 32 and 14 columns, the pixel kernels on 16, and
    /// on 8 and 7 with a remainder of channels on the row kernel, and stride 2 from 28 and 7 columns.
    @Test(.enabled(if: Conv2d.availableDirectLevel == 2, "AVX-512 only"),
          arguments: [(1, 16, 16, 32), (1, 7, 5, 14), (1, 32, 32, 16), (1, 24, 40, 8), (1, 64, 64, 7), (2, 16, 32, 28), (2, 64, 128, 7)])
    func trainingConvolutionSumsTheBatchNormsMoments(_ shape: (Int, Int, Int, Int)) {
        let (stride, c, o, side) = shape
        let x = GradientCheckTests.Map(c, 3, side, side, seed: 55, scale: 2)
        func layers(threads: Int) -> (Conv2d, BatchNorm2d, [Float]) {
            Parallel.withThreads(threads) {
                let conv = Conv2d(name: "conv.weight", inChannels: c, outChannels: o, kernel: 3, stride: stride, padding: 1)
                GradientCheckTests.randomise(conv.weight, seed: 56)
                let bn = Self.evaluationBatchNorm(channels: o, appliesReLU: true)
                let y = conv.forward(x.map, normalisedBy: bn, training: true)
                return (conv, bn, Array(UnsafeBufferPointer(start: y.data, count: y.count)))
            }
        }
        let (conv, fused, output) = layers(threads: 1), (_, _, twoThreads) = layers(threads: 2)
        #expect(conv.runsDirect(width: side))
        #expect(output.map(\.bitPattern) == twoThreads.map(\.bitPattern))

        let plainConv = Conv2d(name: "conv.weight", inChannels: c, outChannels: o, kernel: 3, stride: stride, padding: 1)
        GradientCheckTests.randomise(plainConv.weight, seed: 56)
        let plain = Self.evaluationBatchNorm(channels: o, appliesReLU: true)
        let reference = plain.forward(plainConv.forward(x.map), training: true)
        defer { withExtendedLifetime((plainConv, plain)) {} }
        let expected = Array(UnsafeBufferPointer(start: reference.data, count: reference.count))
        #expect(relativeError(output, expected) < 1e-5)
        #expect(relativeError(fused.runningMean.array, plain.runningMean.array) < 1e-5)
        #expect(relativeError(fused.runningVar.array, plain.runningVar.array) < 1e-5)
    }

    /// A BatchNorm with random scale and shift and running statistics that differ by channel.
    static func evaluationBatchNorm(channels: Int, appliesReLU: Bool) -> BatchNorm2d {
        let bn = BatchNorm2d(name: "bn", channels: channels, appliesReLU: appliesReLU)
        GradientCheckTests.randomise(bn.weight, seed: 44)
        GradientCheckTests.randomise(bn.bias, seed: 45)
        for channel in 0..<channels {
            bn.runningMean[channel] = Float(channel % 7) / 8 - 0.3
            bn.runningVar[channel] = 0.5 + Float(channel % 5) / 4
        }
        return bn
    }

    /// A residual block's first convolution under an identity shortcut stores its input
    /// gradient with the shortcut's gated gradient already added: bit for bit the input
    /// gradient followed by `ReLU.accumulateBackward`, with gates that are closed, exactly zero
    /// or NaN. (in, out, side): the row kernel on 32 and 14 columns, and with AVX-512 the pixel
    /// kernels on 14, 8 and 7 (two 16-channel blocks and a remainder on the row kernel).
    @Test(arguments: [(16, 16, 32), (7, 5, 14), (40, 24, 14), (64, 64, 8), (40, 24, 7)])
    func shortcutGradientInTheInputGradientsStoreEqualsThePassAfter(_ shape: (Int, Int, Int)) {
        let (c, o, side) = shape, batch = 3
        func layer() -> Conv2d {
            let conv = Conv2d(name: "conv.weight", inChannels: c, outChannels: o, kernel: 3, stride: 1, padding: 1)
            GradientCheckTests.randomise(conv.weight, seed: 46)
            return conv
        }
        let fusedLayer = layer(), plainLayer = layer()
        guard fusedLayer.runsDirect(width: side) else { return }  // with AVX2, 8 columns stay on GEMM: nothing fused
        let x = GradientCheckTests.Map(c, batch, side, side, seed: 47)
        let gate = GradientCheckTests.Map(c, batch, side, side, seed: 48), shortcut = GradientCheckTests.Map(c, batch, side, side, seed: 49)
        gate.tensor[3] = 0
        gate.tensor[5] = .nan
        let (r, dy) = GradientCheckTests.projectionGradient(like: fusedLayer.forward(x.map))
        _ = plainLayer.forward(x.map)
        let fusedWorkspace = Workspace(), plainWorkspace = Workspace()
        let fused = fusedLayer.backward(dy, into: fusedWorkspace, addingGated: shortcut.tensor.pointer, gate: gate.tensor.pointer)
        let plain = plainLayer.backward(dy, into: plainWorkspace)
        ReLU.accumulateBackward(shortcut.tensor.pointer, output: gate.tensor.pointer, into: plain.data, count: plain.count)
        defer { withExtendedLifetime((r, fusedLayer, plainLayer)) {} }
        #expect((0..<plain.count).allSatisfy { fused.data[$0].bitPattern == plain.data[$0].bitPattern })
        #expect(fusedLayer.weight.gradient.array.map(\.bitPattern) == plainLayer.weight.gradient.array.map(\.bitPattern))
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
