import Testing
@testable import Model

/// The 3×3 stride-1 convolution without im2col (`DirectConvolution`) against the im2col + GEMM
/// path it replaces, on random data: forward, weight gradient and input gradient.
@Suite(.enabled(if: Conv2d.availableDirectLevel > 0, "the CPU has neither AVX2 nor AVX-512"))
struct DirectConvolutionTests {
    /// What one training pass of a convolution produces.
    struct Pass {
        var output: [Float], weightGradient: [Float], inputGradient: [Float]
    }

    /// Forward and backward of a fresh 3×3 same convolution at `level` (0: im2col + GEMM) on
    /// a random `inChannels × batch × side²` input.
    static func pass(_ inChannels: Int, _ outChannels: Int, side: Int, batch: Int, level: Int, threads: Int = 1) -> Pass {
        let saved = Parallel.threads
        Parallel.threads = threads
        defer { Parallel.threads = saved }
        let conv = Conv2d(name: "conv.weight", inChannels: inChannels, outChannels: outChannels, kernel: 3, stride: 1, padding: 1)
        conv.directLevel = level
        GradientCheckTests.randomise(conv.weight, seed: 3)
        let x = GradientCheckTests.Map(inChannels, batch, side, side, seed: 4)
        let y = conv.forward(x.map)
        let output = Array(UnsafeBufferPointer(start: y.data, count: y.count))
        let (r, dy) = GradientCheckTests.projectionGradient(like: y)
        let gradient = Workspace()
        let dx = withExtendedLifetime(r) { conv.backward(dy, into: gradient) }
        return Pass(output: output, weightGradient: conv.weight.gradient.array,
                    inputGradient: Array(UnsafeBufferPointer(start: dx.data, count: dx.count)))
    }

    /// (in, out, side, batch): ResNet18's first two stages at widths 16 and 4, the stem, the
    /// Fashion-MNIST sides 28 and 14, channel counts that leave remainders in every register block.
    static let shapes = [(16, 16, 32, 3), (3, 16, 32, 2), (4, 4, 16, 3), (5, 7, 28, 2), (32, 32, 16, 2), (31, 17, 14, 2), (8, 8, 9, 2)]

    @Test(arguments: shapes)
    func matchesTheIm2colPath(_ shape: (Int, Int, Int, Int)) {
        let (c, o, side, batch) = shape
        let direct = Self.pass(c, o, side: side, batch: batch, level: Conv2d.availableDirectLevel)
        let reference = Self.pass(c, o, side: side, batch: batch, level: 0)
        #expect(relativeError(direct.output, reference.output) < 1e-6, "forward \(shape)")
        #expect(relativeError(direct.weightGradient, reference.weightGradient) < 1e-5, "weight gradient \(shape)")
        #expect(relativeError(direct.inputGradient, reference.inputGradient) < 1e-6, "input gradient \(shape)")
    }

    /// Resumes must be bit-identical whatever the threads, and AVX2 and AVX-512 machines agree
    /// on the forward pass and the input gradient.
    @Test func theBitsDependNeitherOnThreadsNorOnTheVectorLevel() {
        let level = Conv2d.availableDirectLevel
        for (c, o, side, batch) in [(16, 16, 32, 3), (5, 7, 28, 3)] {
            let one = Self.pass(c, o, side: side, batch: batch, level: level, threads: 1)
            let two = Self.pass(c, o, side: side, batch: batch, level: level, threads: 2)
            #expect(one.output == two.output && one.weightGradient == two.weightGradient && one.inputGradient == two.inputGradient)
            if level == 2 {
                // The weight gradient runs direct on AVX-512 only; AVX2 machines take GEMM.
                let avx2 = Self.pass(c, o, side: side, batch: batch, level: 1)
                #expect(one.output == avx2.output && one.inputGradient == avx2.inputGradient)
            }
        }
    }

    @Test func onlyNarrowStrideOne3x3LayersOnMapsFrom9To32ColumnsRunDirect() {
        let same = Conv2d(name: "a.weight", inChannels: 4, outChannels: 4, kernel: 3, stride: 1, padding: 1)
        #expect(same.runsDirect(width: 32) && same.runsDirect(width: 9) && same.runsDirect(width: 14))
        #expect(!same.runsDirect(width: 8) && !same.runsDirect(width: 4) && !same.runsDirect(width: 33))
        #expect(same.runsDirectWeightGradient(width: 32) == (Conv2d.availableDirectLevel == 2))
        #expect(same.runsDirectWeightGradient(width: 28) == (Conv2d.availableDirectLevel == 2) && !same.runsDirectWeightGradient(width: 16))
        let strided = Conv2d(name: "b.weight", inChannels: 4, outChannels: 8, kernel: 3, stride: 2, padding: 1)
        let pointwise = Conv2d(name: "c.weight", inChannels: 4, outChannels: 8, kernel: 1, stride: 2)
        let wide = Conv2d(name: "d.weight", inChannels: 64, outChannels: 64, kernel: 3, stride: 1, padding: 1)
        #expect(!strided.runsDirect(width: 32) && !pointwise.runsDirect(width: 32) && !wide.runsDirect(width: 32))
        same.directLevel = 0
        #expect(!same.runsDirect(width: 32))
    }
}
