import Foundation
import Testing
@testable import Model

/// The BLAS and the convolution against plain loops on odd shapes.
@Suite struct KernelTests {
    @Test(arguments: [(1, 1, 1), (37, 53, 29), (64, 3, 130), (5, 257, 17)])
    func gemmMatchesNaiveLoop(m: Int, n: Int, k: Int) {
        #expect(BLASCheck.maximumError(m: m, n: n, k: k) < 1e-5)
    }

    /// oneDNN, the second engine, on the same shapes and with padded leading dimensions.
    /// `make deps` installs it (libdnnl2); without it every product stays on OpenBLAS.
    @Test(arguments: [(1, 1, 1), (37, 53, 29), (64, 3, 130), (5, 257, 17)])
    func oneDNNMatchesNaiveLoop(m: Int, n: Int, k: Int) throws {
        try #require(OneDNN.shared != nil, "oneDNN is not installed: `make deps` installs libdnnl2")
        #expect(BLASCheck.maximumError(m: m, n: n, k: k, engine: .oneDNN) < 1e-5)
    }

    /// oneDNN computes a kind of product only when clearly faster: near-ties stay on OpenBLAS.
    @Test func oneDNNMustWinByTheMargin() {
        let margin = GEMMEngineSelection.requiredMargin
        #expect(GEMMEngineSelection.Measurement(kind: .tn, openBLAS: 100, oneDNN: 100 * margin - 1).chosen == .openBLAS)
        #expect(GEMMEngineSelection.Measurement(kind: .tn, openBLAS: 100, oneDNN: 100 * margin).chosen == .oneDNN)
        #expect(GEMMEngineSelection.Measurement(kind: .nn, openBLAS: 150, oneDNN: 90).chosen == .openBLAS)
    }

    /// A measurement is kept only when an engine's two fastest timings agree within 10%: a
    /// busy machine scatters them (OpenBLAS timed 20 GFLOP/s beside a build, 130 idle).
    @Test func engineTimingsMustAgreeToBeKept() {
        #expect(GEMMEngineSelection.agreedRate([100, 95]) == 100)
        #expect(GEMMEngineSelection.agreedRate([95, 100, 40]) == 100)
        #expect(GEMMEngineSelection.agreedRate([100, 89]) == nil)
        #expect(GEMMEngineSelection.agreedRate([20, 130]) == nil)
        #expect(GEMMEngineSelection.agreedRate([20, 130, 125]) == 130)
        #expect(GEMMEngineSelection.agreedRate([100]) == nil)
        #expect(GEMMEngineSelection.agreedRate([0, 0]) == nil)
    }

    /// A training's own rate drops the cache when it is more than 2× off either way, on
    /// products large enough to compare with the measured shapes.
    @Test func trainingRateContradictsTheCacheBeyondTwice() {
        let large = 2.4e9, small = 1e6
        #expect(GEMMEngineSelection.contradicts(cached: 20, achieved: 130, flopsPerCall: large))
        #expect(GEMMEngineSelection.contradicts(cached: 130, achieved: 60, flopsPerCall: large))
        #expect(!GEMMEngineSelection.contradicts(cached: 130, achieved: 70, flopsPerCall: large))
        #expect(!GEMMEngineSelection.contradicts(cached: 60, achieved: 119, flopsPerCall: large))
        #expect(!GEMMEngineSelection.contradicts(cached: 20, achieved: 130, flopsPerCall: small))
        #expect(!GEMMEngineSelection.contradicts(cached: 0, achieved: 130, flopsPerCall: large))
    }

    /// A training's routing is measured on its network's own products, weighted by their share
    /// of the step: at width 16 the direct layers bring none, the chunked ones one per chunk.
    /// The smoke preset's networks are too small to time and keep the start-up routing.
    @Test func trainingsAreRoutedOnTheirOwnProducts() throws {
        try #require(Conv2d.availableDirectLevel > 0, "no AVX2: every layer builds columns, nothing is left out")
        let narrow = ResNet18(.init(width: 16))
        let products = narrow.gemmShapes(batch: 128, side: 32)
        // Stage 1's 16×16 layers: no forward or input-gradient product (their weight gradients
        // stay on GEMM with AVX2 only).
        #expect(!products.contains { $0.m == 16 && $0.k == 144 && $0.kind == .nn })
        #expect(!products.contains { $0.kind == .tt })
        // Stage 4 (128 channels, 4×4 maps): with AVX-512 its stride-1 layers run direct, with
        // AVX2 on GEMM, all 128 images in one chunk; its downsampling conv is a product on both.
        let stage4 = products.filter { $0.m == 128 && $0.k == 1152 && $0.kind == .nn }
        if Conv2d.availableDirectLevel == 2 {
            #expect(stage4.isEmpty)
        } else {
            #expect(!stage4.isEmpty && stage4.allSatisfy { $0.n == 128 * 16 && $0.calls == 1 })
        }
        // Its downsampling 3×3 conv: on the stride-2 pixel kernels with AVX-512, a product with AVX2.
        let downsampling = products.contains { $0.m == 128 && $0.k == 576 && $0.n == 128 * 16 && $0.kind == .nn && $0.calls == 1 }
        #expect(downsampling == (Conv2d.availableDirectLevel == 1))
        // A chunked product (width 64's first stage) counts once per chunk.
        let wide = ResNet18(.init(width: 64)).gemmShapes(batch: 128, side: 32)
        let chunked = try #require(wide.first { $0.calls > 1 })
        #expect(chunked.stepFlops == chunked.flops * Double(chunked.calls))

        let smoke = ResNet18(.init(width: 4))
        #expect(smoke.gemmShapes(batch: 32, side: 16).reduce(0) { $0 + $1.stepFlops } < GEMMEngineSelection.smallestRoutedStep)
        // Width 64 is routed on its own products; width 16's are 1×1 layers only with AVX-512
        // (0.3 GFLOP a step), which keep the start-up routing as the smoke preset's do.
        #expect(wide.reduce(0) { $0 + $1.stepFlops } > GEMMEngineSelection.smallestRoutedStep)
    }

    /// How old a cached measurement is and how busy the machine was, as `worker engines` says it.
    @Test func cachedMeasurementDescribesItsConditions() {
        let now = Date(timeIntervalSinceReferenceDate: 1_000_000)
        let idle = GEMMEngineSelection.Record(measurements: [], measuredAt: now.addingTimeInterval(-3 * 3600),
                                              othersBusyShare: 0.02, repetitionsAgreed: true)
        #expect(idle.describe(now: now) == "measured 3 h ago on an idle machine (other processes used 2% of the CPUs)")
        let busy = GEMMEngineSelection.Record(measurements: [], measuredAt: now.addingTimeInterval(-5),
                                              othersBusyShare: 0.6, repetitionsAgreed: true)
        #expect(busy.describe(now: now) == "measured just now on a busy machine (other processes used 60% of the CPUs)")
    }

    /// Per-kind GEMM accounting: a stretch of work is the difference of two readings.
    @Test func gemmUsageIsCountedPerKind() {
        let before = BLAS.usage
        let a = [Float](repeating: 1, count: 6), b = [Float](repeating: 1, count: 6)
        var c = [Float](repeating: 0, count: 9)
        BLAS.gemm(.none, .transpose, m: 3, n: 3, k: 2, a: a, lda: 2, b: b, ldb: 2, c: &c, ldc: 3)
        let stretch = BLAS.usage.since(before)
        #expect(stretch.calls[BLAS.Kind.nt.rawValue] >= 1)
        #expect(stretch.flops[BLAS.Kind.nt.rawValue] >= 36)
    }

    @Test(arguments: BLAS.Engine.allCases)
    func gemmHonoursLeadingDimensions(engine: BLAS.Engine) {
        // C (2×2) inside a 2×5 array, A and B with padded rows.
        let a: [Float] = [1, 2, 9, 3, 4, 9], b: [Float] = [5, 6, 9, 9, 7, 8, 9, 9]
        var c = [Float](repeating: -1, count: 10)
        BLAS.gemm(on: engine, .none, .none, m: 2, n: 2, k: 2, a: a, lda: 3, b: b, ldb: 4, c: &c, ldc: 5)
        #expect(c == [19, 22, -1, -1, -1, 43, 50, -1, -1, -1])
    }

    @Test(arguments: [(3, 1, 1), (3, 2, 1), (1, 2, 0), (5, 2, 2), (3, 3, 0), (5, 1, 2)])
    func convolutionMatchesDirectLoop(kernel: Int, stride: Int, padding: Int) {
        let (cin, cout, n, h, w) = (3, 5, 2, 7, 6)
        let conv = Conv2d(name: "c.weight", inChannels: cin, outChannels: cout, kernel: kernel, stride: stride, padding: padding)
        GradientCheckTests.randomise(conv.weight, seed: 11)
        let x = GradientCheckTests.Map(cin, n, h, w, seed: 12)
        let y = conv.forward(x.map)
        let (oh, ow) = (conv.outputExtent(h), conv.outputExtent(w))
        #expect(y.height == oh && y.width == ow)
        var worst: Float = 0
        for o in 0..<cout {
            for image in 0..<n {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var expected: Float = 0
                        for c in 0..<cin {
                            for ki in 0..<kernel {
                                for kj in 0..<kernel {
                                    let iy = oy * stride - padding + ki, ix = ox * stride - padding + kj
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    expected += conv.weight.value[((o * cin + c) * kernel + ki) * kernel + kj]
                                        * x.tensor[((c * n + image) * h + iy) * w + ix]
                                }
                            }
                        }
                        worst = max(worst, abs(expected - y.data[((o * n + image) * oh + oy) * ow + ox]))
                    }
                }
            }
        }
        #expect(worst < 1e-5)
    }

    /// Building the column matrix in chunks of images (one image, or 1-2-2 of five) gives the
    /// whole-batch product's output, weight gradient and input gradient, written or added;
    /// only the weight gradient's summation order changes, so it may differ by rounding.
    @Test(arguments: [(3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0), (5, 1, 2)])
    func chunkedConvolutionMatchesWholeBatch(kernel: Int, stride: Int, padding: Int) {
        let (cin, cout, n, h, w) = (3, 5, 5, 7, 6)
        let x = GradientCheckTests.Map(cin, n, h, w, seed: 30)
        let base = GradientCheckTests.Map(cin, n, h, w, seed: 31)
        func run(chunkImages: Int?) -> (chunks: Int, y: [Float], dw: [Float], dx: [Float], added: [Float]) {
            let conv = Conv2d(name: "c.weight", inChannels: cin, outChannels: cout, kernel: kernel, stride: stride, padding: padding)
            GradientCheckTests.randomise(conv.weight, seed: 32)
            let area = conv.outputExtent(h) * conv.outputExtent(w)
            if let chunkImages { conv.columnChunkElements = chunkImages * cin * kernel * kernel * area }
            let y = conv.forward(x.map)
            let yCopy = Array(UnsafeBufferPointer(start: y.data, count: y.count))
            let (r, dy) = GradientCheckTests.projectionGradient(like: y)
            let gradient = Workspace()
            let dxCopy = withExtendedLifetime(gradient) {
                let dx = conv.backward(dy, into: gradient)
                return Array(UnsafeBufferPointer(start: dx.data, count: dx.count))
            }
            let dw = conv.weight.gradient.array
            let sum = base.tensor.clone()
            conv.backward(dy, addingTo: x.map.sameShape(at: sum.pointer))
            _ = r
            return (conv.chunks(batch: n, rows: cin * kernel * kernel, area: area).count, yCopy, dw, dxCopy, sum.array)
        }
        let whole = run(chunkImages: nil)
        #expect(whole.chunks == 1)
        for (images, expectedChunks) in [(1, 5), (2, 3)] {
            let chunked = run(chunkImages: images)
            #expect(chunked.chunks == (kernel == 1 && stride == 1 ? 1 : expectedChunks))
            #expect(relativeError(chunked.y, whole.y) < 1e-6)
            #expect(relativeError(chunked.dw, whole.dw) < 1e-6)
            #expect(relativeError(chunked.dx, whole.dx) < 1e-6)
            #expect(relativeError(chunked.added, whole.added) < 1e-6)
        }
        let expectedSum = zip(base.tensor.array, whole.dx).map { $0 + $1 }
        #expect(relativeError(whole.added, expectedSum) < 1e-6)
    }

    @Test func imageChunksCoverTheBatchEvenly() {
        let chunks = ImageChunks(batch: 128, elementsPerImage: 576 * 1024, budget: 1 << 21)
        #expect(chunks.count == 43 && chunks.largest == 3)
        #expect(chunks[0] == 0..<2 && chunks[42] == 125..<128)
        #expect((0..<chunks.count).map { chunks[$0].count }.reduce(0, +) == 128)
        #expect((1..<chunks.count).allSatisfy { chunks[$0 - 1].upperBound == chunks[$0].lowerBound })
        #expect(ImageChunks(batch: 4, elementsPerImage: 10, budget: 1 << 21).count == 1)
        #expect(ImageChunks(batch: 4, elementsPerImage: 10, budget: 1).count == 4)
    }

    @Test func floorAndCeilDivision() {
        #expect(floorDivide(-1, 2) == -1 && floorDivide(3, 2) == 1 && floorDivide(-4, 2) == -2)
        #expect(ceilDivide(1, 2) == 1 && ceilDivide(-1, 2) == 0 && ceilDivide(4, 2) == 2)
    }

    @Test func learningRateSchedules() {
        // TV10 of the pruning reference.
        let dense = LearningRateSchedule.multiStep(milestones: [60, 120, 160], gamma: 0.2)
        let expected: [(Int, Double)] = [(1, 0.1), (60, 0.1), (61, 0.02), (121, 0.004), (161, 0.0008), (200, 0.0008)]
        for (epoch, rate) in expected {
            #expect(abs(dense.rate(base: 0.1, epoch: epoch, step: 0, totalSteps: 1) - rate) < 1e-12, "epoch \(epoch)")
        }
        let han = LearningRateSchedule.multiStep(milestones: [50, 75], gamma: 0.2)
        #expect(abs(han.rate(base: 0.01, epoch: 51, step: 0, totalSteps: 1) - 0.002) < 1e-12)
        #expect(abs(han.rate(base: 0.01, epoch: 76, step: 0, totalSteps: 1) - 0.0004) < 1e-12)
        #expect(LearningRateSchedule.cosine.rate(base: 0.1, epoch: 1, step: 0, totalSteps: 10) == 0.1)
        #expect(abs(LearningRateSchedule.cosine.rate(base: 0.1, epoch: 1, step: 5, totalSteps: 10) - 0.05) < 1e-12)
    }

    @Test func randomStreamsAreIndependentAndRestorable() throws {
        var a = RandomStream(seed: 1, stream: .shuffle), b = RandomStream(seed: 1, stream: .augmentation)
        #expect(a.next() != b.next())
        let saved = a.state
        let next = a.next()
        var restored = try RandomStream(state: saved)
        #expect(restored.next() == next)
        #expect(throws: ModelError.self) { try RandomStream(state: [0, 0, 0, 0]) }
        #expect(Set(a.permutation(50)) == Set(0..<50))
    }
}
