import DirectConvolution
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

    /// Forward and backward of a fresh 3×3 convolution with padding 1 at `level` (0: im2col +
    /// GEMM) on a random `inChannels × batch × side²` input.
    static func pass(_ inChannels: Int, _ outChannels: Int, side: Int, batch: Int, level: Int, threads: Int = 1, stride: Int = 1) -> Pass {
        Parallel.withThreads(threads) {
            let conv = Conv2d(name: "conv.weight", inChannels: inChannels, outChannels: outChannels, kernel: 3, stride: stride, padding: 1)
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
    }

    /// (in, out, side, batch): ResNet18's first two stages at widths 16 and 4, the stem, the
    /// Fashion-MNIST sides 28 and 14, channel counts that leave remainders in every register block.
    /// With AVX-512 also width 16's stages 3 and 4 (8 and 4 columns, Fashion-MNIST's 7), a
    /// channel count with a remainder past its 16-channel blocks, and the channel-vectorised
    /// weight gradient on 28 columns with one 16-channel block and with a pair.
    static let shapes = [(16, 16, 32, 3), (3, 16, 32, 2), (4, 4, 16, 3), (5, 7, 28, 2), (32, 32, 16, 2), (31, 17, 14, 2), (8, 8, 9, 2),
                         (64, 64, 8, 2), (128, 128, 4, 2), (48, 40, 7, 2), (16, 16, 28, 2), (16, 32, 28, 2)]

    @Test(arguments: shapes)
    func matchesTheIm2colPath(_ shape: (Int, Int, Int, Int)) {
        let (c, o, side, batch) = shape
        let direct = Self.pass(c, o, side: side, batch: batch, level: Conv2d.availableDirectLevel)
        let reference = Self.pass(c, o, side: side, batch: batch, level: 0)
        #expect(relativeError(direct.output, reference.output) < 1e-6, "forward \(shape)")
        #expect(relativeError(direct.weightGradient, reference.weightGradient) < 1e-5, "weight gradient \(shape)")
        #expect(relativeError(direct.inputGradient, reference.inputGradient) < 1e-6, "input gradient \(shape)")
    }

    /// (in, out, side, batch): width 16's three downsampling layers on CIFAR's sides 32, 16 and 8
    /// and Fashion-MNIST's 28, 14 and 7, and a single 16-channel block.
    static let strideTwoShapes = [(16, 32, 32, 3), (32, 64, 16, 2), (64, 128, 8, 3), (16, 32, 28, 2), (32, 64, 14, 2), (64, 128, 7, 3),
                                  (16, 16, 8, 2)]

    /// The stride-2 pixel kernels, the input gradient with 16 input channels per vector and
    /// the strided channel weight gradient (AVX-512), against im2col + GEMM + col2im; the bits
    /// do not depend on the threads; adding into an input gradient adds exactly.
    @Test(.enabled(if: Conv2d.availableDirectLevel == 2, "AVX-512 only"), arguments: strideTwoShapes)
    func strideTwoLayersMatchTheIm2colPath(_ shape: (Int, Int, Int, Int)) {
        let (c, o, side, batch) = shape
        let strided = Conv2d(name: "s.weight", inChannels: c, outChannels: o, kernel: 3, stride: 2, padding: 1)
        #expect(strided.runsDirect(width: side) && strided.runsDirectWeightGradient(width: side))
        let direct = Self.pass(c, o, side: side, batch: batch, level: 2, stride: 2)
        let reference = Self.pass(c, o, side: side, batch: batch, level: 0, stride: 2)
        #expect(relativeError(direct.output, reference.output) < 1e-6, "forward \(shape)")
        #expect(relativeError(direct.weightGradient, reference.weightGradient) < 1e-5, "weight gradient \(shape)")
        #expect(relativeError(direct.inputGradient, reference.inputGradient) < 1e-6, "input gradient \(shape)")
        let two = Self.pass(c, o, side: side, batch: batch, level: 2, threads: 2, stride: 2)
        #expect(direct.output == two.output && direct.weightGradient == two.weightGradient && direct.inputGradient == two.inputGradient)

        strided.directLevel = 2
        GradientCheckTests.randomise(strided.weight, seed: 3)
        let x = GradientCheckTests.Map(c, batch, side, side, seed: 4)
        let y = strided.forward(x.map)
        let (r, dy) = GradientCheckTests.projectionGradient(like: y)
        let dx = GradientCheckTests.Map(c, batch, side, side, seed: 5)
        let before = dx.tensor.array
        withExtendedLifetime(r) { strided.backward(dy, addingTo: dx.map) }
        let added = zip(before, direct.inputGradient).map { $0 + $1 }
        #expect(dx.tensor.array.map(\.bitPattern) == added.map(\.bitPattern))
    }

    /// Resumes must be bit-identical whatever the threads, and AVX2 and AVX-512 machines agree
    /// on the forward pass and the input gradient.
    @Test func theBitsDependNeitherOnThreadsNorOnTheVectorLevel() {
        let level = Conv2d.availableDirectLevel
        for (c, o, side, batch) in [(16, 16, 32, 3), (16, 16, 28, 3), (5, 7, 28, 3), (64, 64, 8, 3), (32, 48, 4, 9), (16, 32, 14, 3)] {
            let one = Self.pass(c, o, side: side, batch: batch, level: level, threads: 1)
            let two = Self.pass(c, o, side: side, batch: batch, level: level, threads: 2)
            #expect(one.output == two.output && one.weightGradient == two.weightGradient && one.inputGradient == two.inputGradient)
            // With AVX2, maps of 8 columns and less stay on GEMM: nothing to compare there.
            if level == 2 && side > 8 {
                // The weight gradient runs direct on AVX-512 only; AVX2 machines take GEMM.
                let avx2 = Self.pass(c, o, side: side, batch: batch, level: 1)
                #expect(one.output == avx2.output && one.inputGradient == avx2.inputGradient)
            }
        }
    }

    /// What a direct call of the C kernels takes: a random `c × batch × side²` input (from
    /// `seed`), a random `o × c × 3 × 3` weight (from `seed + 1`), the weight packed for the pixel
    /// kernels, and one thread's scratch.
    static func kernelCall(_ c: Int, _ o: Int, side: Int, height: Int? = nil, batch: Int, seed: UInt64)
        -> (x: GradientCheckTests.Map, weight: Parameter, packed: Tensor, scratch: Tensor) {
        let height = height ?? side
        let x = GradientCheckTests.Map(c, batch, height, side, seed: seed)
        let weight = Parameter(name: "w", shape: [o, c, 3, 3], prunable: true)
        GradientCheckTests.randomise(weight, seed: seed + 1)
        let packed = Tensor(shape: [Swift.max(1, direct_convolution_packed_floats(Int32(c), Int32(o)))])
        direct_convolution_pack(weight.value.pointer, packed.pointer, Int32(c), Int32(o))
        let scratch = Tensor(shape: [direct_convolution_scratch_floats(Int32(c), Int32(height), Int32(side))])
        return (x, weight, packed, scratch)
    }

    /// The pixel kernels (16 output channels per vector, whole rows in registers) sum every
    /// output as the row kernel does: the same bits on maps of 28 (four column tiles), 16, 14
    /// (two), 8, 7 and 4 columns, with and without a remainder of channels past the 16-channel
    /// blocks, and with an odd number of rows, which leaves single rows past the two-row tiles.
    /// (in, out, rows, columns).
    @Test(.enabled(if: Conv2d.availableDirectLevel == 2, "AVX-512 only"),
          arguments: [(64, 64, 8, 8), (128, 128, 4, 4), (24, 40, 7, 7), (16, 16, 4, 4), (32, 56, 16, 16), (32, 56, 15, 16),
                      (24, 56, 14, 14), (24, 56, 13, 14), (16, 16, 7, 28), (16, 16, 6, 28), (3, 40, 5, 28)])
    func pixelKernelsGiveTheRowKernelsBits(_ shape: (Int, Int, Int, Int)) {
        let (c, o, height, side) = shape, batch = 3
        let (x, weight, packed, scratch) = Self.kernelCall(c, o, side: side, height: height, batch: batch, seed: 51)
        let pixels = Tensor(shape: [o * batch * height * side]), rows = Tensor(shape: [o * batch * height * side])
        let variants: [(UnsafeMutablePointer<Float>?, Tensor)] = [(packed.pointer, pixels), (nil, rows)]
        for (packing, y) in variants {
            direct_convolution_3x3(x.tensor.pointer, weight.value.pointer, packing, y.pointer, Int32(c), Int32(o), Int32(batch),
                                   Int32(height), Int32(side), 1, 0, Int32(batch), scratch.pointer, 0, nil, 2)
        }
        #expect(direct_convolution_packs(Int32(side), 1) != 0)
        let differing = zip(pixels.array, rows.array).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(pixels.count) outputs differ from the row kernel's")
    }

    /// A store that also sums each output plane (`moments` in the epilogue) writes the plain
    /// store's bits, and its sums equal the output's, added in Double, to float rounding: on the
    /// row kernel (32 columns, and 28 with fewer than 16 channels), the pixel kernels with a
    /// remainder on the row kernel (16, 14, 8 and 7) and at stride 2 (inputs of 32, 28 and 7 columns), over a chunk of images that
    /// starts past the first. With AVX-512 the row kernel sums from its registers; the AVX2 row
    /// kernel (stride 1 only, no pixel kernels) sums each stored row, and is checked wherever
    /// the CPU has AVX2.
    @Test(arguments: [(1, 16, 16, 32), (1, 5, 7, 28), (1, 32, 40, 16), (1, 7, 20, 14), (1, 24, 40, 8), (1, 64, 64, 7), (2, 16, 32, 32),
                      (2, 16, 32, 28), (2, 64, 128, 7)])
    func storesSumEachOutputPlane(_ shape: (Int, Int, Int, Int)) {
        let (stride, c, o, side) = shape, batch = 3, out = (side - 1) / stride + 1
        let levels = (1...Conv2d.availableDirectLevel).filter { $0 == 2 || stride == 1 }
        let (x, weight, packed, scratch) = Self.kernelCall(c, o, side: side, batch: batch, seed: 57)
        for level in levels {
            let packing = level == 2 && direct_convolution_packs(Int32(side), Int32(stride)) != 0 ? packed.pointer : nil
            let plain = Tensor(shape: [o * batch * out * out]), summed = Tensor(shape: [o * batch * out * out])
            var moments = [Double](repeating: 0, count: 2 * o * batch)
            direct_convolution_3x3(x.tensor.pointer, weight.value.pointer, packing, plain.pointer, Int32(c), Int32(o), Int32(batch),
                                   Int32(side), Int32(side), Int32(stride), 1, Int32(batch), scratch.pointer, 0, nil, Int32(level))
            moments.withUnsafeMutableBufferPointer { sums in
                var epilogue = direct_convolution_epilogue(scale: nil, shift: nil, residual: nil, relu: 0, gate: nil, gradient: nil,
                                                           moments: sums.baseAddress)
                direct_convolution_3x3(x.tensor.pointer, weight.value.pointer, packing, summed.pointer, Int32(c), Int32(o),
                                       Int32(batch), Int32(side), Int32(side), Int32(stride), 1, Int32(batch), scratch.pointer, 0,
                                       &epilogue, Int32(level))
            }
            let area = out * out
            var worst = 0.0
            for channel in 0..<o {
                for image in 0..<batch {
                    let plane = (channel * batch + image) * area
                    let values = (0..<area).map { Double(summed[plane + $0]) }
                    let sum = values.reduce(0, +), squares = values.reduce(0) { $0 + $1 * $1 }
                    let magnitude = values.reduce(0) { $0 + abs($1) }
                    let index = 2 * (channel * batch + image)
                    if image == 0 {
                        #expect(moments[index] == 0 && moments[index + 1] == 0, "level \(level): image 0 is outside the chunk")
                        continue
                    }
                    worst = Swift.max(worst, abs(moments[index] - sum) / Swift.max(magnitude, 1e-30),
                                      abs(moments[index + 1] - squares) / Swift.max(squares, 1e-30))
                }
            }
            #expect(worst < 1e-6, "level \(level): moments differ from the output's sums by \(worst) relative")
            let chunk = o * batch * area
            #expect((0..<chunk).allSatisfy { index in (index / area) % batch == 0 || summed[index].bitPattern == plain[index].bitPattern },
                    "level \(level): the summing store changed the output")
        }
    }

    @Test func onlyNarrowStrideOne3x3LayersOnMapsFrom9To32ColumnsRunDirect() {
        let same = Conv2d(name: "a.weight", inChannels: 4, outChannels: 4, kernel: 3, stride: 1, padding: 1)
        #expect(same.runsDirect(width: 32) && same.runsDirect(width: 9) && same.runsDirect(width: 14))
        #expect(!same.runsDirect(width: 33))
        // Maps of 8 columns and less: the AVX-512 pixel kernels up to 128 channels; with AVX2 GEMM.
        let stage4 = Conv2d(name: "e.weight", inChannels: 128, outChannels: 128, kernel: 3, stride: 1, padding: 1)
        let paper4 = Conv2d(name: "f.weight", inChannels: 512, outChannels: 512, kernel: 3, stride: 1, padding: 1)
        #expect(same.runsDirect(width: 8) == (Conv2d.availableDirectLevel == 2) && stage4.runsDirect(width: 4) == (Conv2d.availableDirectLevel == 2))
        #expect(!paper4.runsDirect(width: 4) && !stage4.runsDirect(width: 16))
        #expect(same.runsDirectWeightGradient(width: 32) == (Conv2d.availableDirectLevel == 2))
        #expect(same.runsDirectWeightGradient(width: 28) == (Conv2d.availableDirectLevel == 2) && !same.runsDirectWeightGradient(width: 16))
        let stage2 = Conv2d(name: "g.weight", inChannels: 32, outChannels: 32, kernel: 3, stride: 1, padding: 1)
        #expect(stage2.runsDirectWeightGradient(width: 16) == (Conv2d.availableDirectLevel == 2) && !stage2.runsDirectWeightGradient(width: 12))
        let strided = Conv2d(name: "b.weight", inChannels: 4, outChannels: 8, kernel: 3, stride: 2, padding: 1)
        let pointwise = Conv2d(name: "c.weight", inChannels: 4, outChannels: 8, kernel: 1, stride: 2)
        let wide = Conv2d(name: "d.weight", inChannels: 64, outChannels: 64, kernel: 3, stride: 1, padding: 1)
        #expect(!strided.runsDirect(width: 32) && !pointwise.runsDirect(width: 32) && !wide.runsDirect(width: 32))
        // Stride 2 with AVX-512: width 16's downsampling layers, not width 64's.
        let down16 = Conv2d(name: "h.weight", inChannels: 16, outChannels: 32, kernel: 3, stride: 2, padding: 1)
        let down64 = Conv2d(name: "i.weight", inChannels: 64, outChannels: 128, kernel: 3, stride: 2, padding: 1)
        #expect(down16.runsDirect(width: 32) == (Conv2d.availableDirectLevel == 2) && !down64.runsDirect(width: 32))
        same.directLevel = 0
        #expect(!same.runsDirect(width: 32))
    }
}
