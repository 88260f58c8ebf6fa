import DirectConvolution

/// A 2-D convolution without bias (every convolution of the CIFAR ResNet is followed by
/// BatchNorm), with any kernel size, stride and zero padding.
///
/// Forward: `Y[out, N·Ho·Wo] = W[out, in·k·k] × col[in·k·k, N·Ho·Wo]`. The column matrix is
/// built and consumed in chunks of whole images (`ImageChunks`), one GEMM per chunk writing
/// its block of `Y`'s columns, so it never exists for the whole batch: at width 64, batch 128
/// a stage-1 layer's full column matrix is 288 MiB, a chunk a few MiB that stays in the
/// last-level cache between `im2col` and the GEMM. The weight gradient rebuilds the same
/// chunks from the saved input and sums `dY_chunk × col_chunkᵀ` over them in chunk order.
///
/// The input gradient of a stride-1 "same" convolution (every 3×3 conv but the three that
/// downsample) is itself a convolution of `∂L/∂Y` with the flipped, transposed kernel:
/// `dX[in, ·] = W̃[in, out·k·k] × col(dY)`. That GEMM has the forward's efficient shape
/// (K = out·k·k instead of K = out) and writes `dX` directly, with no scatter-add pass.
/// Other convolutions take `dcol = Wᵀ·dY` followed by `col2im`, chunk by chunk as well.
///
/// On maps at most 32 wide (every stride-1 3×3 layer of the CIFAR and Fashion-MNIST networks)
/// and CPUs with AVX2 or AVX-512, narrow layers skip im2col altogether (`runsDirect`):
/// `DirectConvolution` sums each output row in vector registers over a zero-bordered copy of
/// one image, for the forward pass and that transposed convolution, and with AVX-512 also for
/// the weight gradients and for width 16's three stride-2 layers (their input gradient summed
/// 16 input channels per vector, without col2im). Nine shifted copies of a 16-channel map cost
/// more than the arithmetic on them.
public final class Conv2d {
    /// Input channels, output channels, kernel size (square), stride and zero padding.
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    /// The weight, shaped `[out, in, k, k]` like PyTorch's.
    public let weight: Parameter
    /// The most column-matrix elements one chunk may hold (at least one image always fits).
    /// The chunking, and with it the weight gradient's summation order, depends on this and
    /// the shapes only, never on the thread count.
    public var columnChunkElements: Int
    /// 16 Mi floats (64 MiB): measured side by side on an idle AMD EPYC (Zen, 2 threads, w64
    /// b128), 8 MiB chunks trained at 0.84× the unchunked step and 64 MiB at 0.96×, for 50 MiB
    /// more peak memory (1.0 GB in all, against 4.0 GB unchunked).
    public static let defaultColumnChunkElements = 1 << 24
    /// 512 Ki floats (2 MiB, a core's L2) for layers of at most `directChannelLimit` channels
    /// each way: their products are too small to gain from long columns, and a chunk that stays
    /// in cache between im2col and GEMM made the width-16 step 8–15% faster per CPU-second
    /// (Xeon Cooper Lake, 1 thread, two interleaved pairs). Wider layers keep the 64 MiB chunks
    /// (and the summation order the float64 comparison was measured with).
    public static let narrowColumnChunkElements = 1 << 19
    /// The sparse engine's path, set where the per-layer choice made this layer sparse (`SparseSelection`).
    public var sparse: SparseConvolution?
    private let output = Workspace()
    private let flippedWeight = Workspace()
    /// The following BatchNorm's per-channel scale and shift, for the fused evaluation pass.
    private let evaluationAffine = Workspace()
    /// Doubles, two per output plane: the training BatchNorm's sums, formed in the direct kernels' stores.
    private let planeMoments = Workspace()
    /// The kernel (or the flipped one) in blocks of 16 output channels, for `DirectConvolution`'s
    /// AVX-512 pixel kernels.
    private let packedKernel = Workspace()
    private let columns: Workspace
    private var savedInput: FeatureMap?

    /// A convolution whose weight is named `name` (e.g. `layer1.0.conv1.weight`), zero-initialised.
    /// `columns` holds the column-matrix chunks; a network passes every layer the same one,
    /// since only one layer works at a time.
    public init(name: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                columns: Workspace = Workspace()) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.weight = Parameter(name: name, shape: [outChannels, inChannels, kernel, kernel], prunable: true)
        self.columns = columns
        columnChunkElements = Self.isNarrow(inChannels, outChannels) ? Self.narrowColumnChunkElements : Self.defaultColumnChunkElements
    }

    /// Whether the layer keeps `narrowColumnChunkElements` (at most `directChannelLimit`
    /// channels each way); wider ones chunk by `defaultColumnChunkElements` or by what
    /// `ColumnChunkSelection` measured.
    public var isNarrow: Bool { Self.isNarrow(inChannels, outChannels) }
    private static func isNarrow(_ inChannels: Int, _ outChannels: Int) -> Bool {
        inChannels <= directChannelLimit && outChannels <= directChannelLimit
    }

    /// Whether a training step on inputs `width` wide builds column-matrix chunks: for the
    /// forward pass, or only for the weight gradient where the other passes run direct.
    public func buildsColumnChunks(width: Int) -> Bool {
        buildsColumns && !(runsDirect(width: width) && runsDirectWeightGradient(width: width))
    }

    /// The output extent along one axis for an input extent `size`.
    public func outputExtent(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }

    /// A 1×1, stride-1, unpadded convolution reads its input directly as the column matrix.
    private var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    private var columnRows: Int { inChannels * kernel * kernel }

    /// Whether the input gradient is computed as a convolution (stride 1, output size = input size).
    private var usesTransposedConvolution: Bool { kernel > 1 && stride == 1 && 2 * padding == kernel - 1 }

    /// What this CPU supports: 2 with AVX-512F, 1 with AVX2 and FMA, else 0. Both levels give
    /// the same bits (each output is summed in the same order).
    public static let availableDirectLevel = Int(direct_convolution_level())
    /// The vector level this layer's `DirectConvolution` runs at (0: never; at most
    /// `availableDirectLevel`). The benchmark and the tests lower it to compare the paths.
    public var directLevel = Conv2d.availableDirectLevel {
        didSet { directLevel = Swift.max(0, Swift.min(directLevel, Self.availableDirectLevel)) }
    }

    /// Whether the forward pass and the input gradient on inputs `width` wide run on
    /// `DirectConvolution`: 3×3 stride-1 layers of at most `directChannelLimit` channels each way
    /// on maps 9 to 32 columns wide (14 to 32 in ResNet18 on CIFAR and Fashion-MNIST), and with
    /// AVX-512 also layers of up to `directNarrowMapChannelLimit` channels on maps of at most 8
    /// columns (width 16's stages 3 and 4), whose 16-channel blocks run on the pixel kernels.
    /// With AVX2 only, maps of 8 columns and less would idle half the lanes of the row kernel or
    /// more, and GEMM with im2col was as fast or faster there (docs/model.md). With AVX-512 the
    /// stride-2 3×3 layers run on the pixel kernels too, in whole 16-channel blocks, under the
    /// same channel limits applied to their output maps (width 16's three, not width 64's).
    public func runsDirect(width: Int) -> Bool {
        guard runsDirectForward(width: width) else { return false }
        let outputWidth = outputExtent(width)
        let limit = outputWidth > 8 ? Self.directChannelLimit : Self.directNarrowMapChannelLimit
        return inChannels <= limit && outChannels <= limit && (stride == 2 || outputWidth > 8 || directLevel == 2)
    }

    /// Whether evaluation runs this layer's forward pass on `DirectConvolution`, with the
    /// following BatchNorm in its epilogue, where training keeps im2col + GEMM: set by
    /// `EvaluationRouteSelection` where that measured faster. Evaluation has no gradient whose
    /// float64 bound the direct kernels' summation order would move (`directChannelLimit`).
    public var evaluatesDirect = false

    /// Whether `DirectConvolution` has a forward pass for this layer on inputs `width` wide, at
    /// any channel count: 3×3 stride 1 on maps of at most 32 columns, and with AVX-512 stride 2
    /// in whole blocks of 16 channels where the pixel kernels cover the output map.
    public func runsDirectForward(width: Int) -> Bool {
        guard kernel == 3 && padding == 1 && width <= 32 && directLevel > 0 else { return false }
        if stride == 2 {
            return directLevel == 2 && inChannels % 16 == 0 && outChannels % 16 == 0 && direct_convolution_packs(Int32(width), 2) != 0
        }
        return stride == 1
    }

    /// The widest layer that runs direct on maps wider than 8 columns. Width 64's first stage
    /// ran faster direct too, but its first step moved from 1.3e-3 to 4.4e-3 of float64
    /// (PyTorch float32: 2.0e-3) by other ReLU boundary flips, past `Float64ReferenceTests`'
    /// bound; the paper network keeps the products that bound was measured on, and the quick
    /// preset's (width 16) run direct.
    public static let directChannelLimit = 32
    /// The widest layer that runs direct on maps of at most 8 columns (AVX-512 only): width 16's
    /// 64- and 128-channel stages, not width 64's (256 and 512 channels, the float64 bound's).
    public static let directNarrowMapChannelLimit = 128

    /// Whether the weight gradient on maps `width` wide runs on `DirectConvolution`: with
    /// AVX-512 only, 16 output channels per vector on maps of 32, 28, 16, 14, 8, 7 and 4
    /// columns (1.6–3× im2col + GEMM on stages 2–4; on the first stage, 28 columns, half the
    /// time of the row-vectorised kernel, which idled 4 of every 32 lanes there), and
    /// row-vectorised on other maps of 24 columns or more, where it beat im2col + GEMM (at 16
    /// columns they tied, and with AVX2 it lost).
    public func runsDirectWeightGradient(width: Int) -> Bool {
        runsDirect(width: width) && directLevel == 2 && (stride == 1 && width >= 24 || runsChannelWeightGradient(width: width))
    }

    /// The weight gradient with 16 output channels per vector: maps it has kernels for (every
    /// stride-2 layer that runs direct, and the first stage's), whole blocks of 16 output channels.
    private func runsChannelWeightGradient(width: Int) -> Bool {
        direct_convolution_channel_gradient_covers(Int32(width), Int32(stride)) != 0 && outChannels % 16 == 0
    }

    /// How the input gradient is formed on maps `width` wide, for reports: "direct transposed
    /// conv", "transposed conv", "col2im" or "direct GEMM".
    public func inputGradientMethod(width: Int) -> String {
        runsDirect(width: width) ? "direct transposed conv" : usesTransposedConvolution ? "transposed conv" : isPointwise ? "direct GEMM" : "col2im"
    }

    /// Whether the layer builds column matrices (all but 1×1 stride-1 convolutions).
    public var buildsColumns: Bool { !isPointwise }

    /// One matrix product of a training step: `m×k` times `k×n`, with operand transposes.
    public struct GEMMShape: Hashable, Sendable {
        /// The product's dimensions.
        public var m: Int, n: Int, k: Int
        /// Whether A and B are used transposed.
        public var transposeA: Bool, transposeB: Bool
        /// How many such products the step performs (one per chunk; a smaller last chunk
        /// counts as a full one).
        public var calls = 1

        /// Floating-point operations of one such product.
        public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
        /// Floating-point operations of all `calls` of them.
        public var stepFlops: Double { flops * Double(calls) }
        /// The product's kind, by its operands' transposes.
        public var kind: BLAS.Kind { BLAS.Kind(transposeA ? .transpose : .none, transposeB ? .transpose : .none) }
    }

    /// The chunks a product over `batch` images is cut into when each image brings `rows`
    /// column-matrix rows over `area` output positions; one chunk when no columns are built.
    public func chunks(batch: Int, rows: Int, area: Int) -> ImageChunks {
        ImageChunks(batch: batch, elementsPerImage: isPointwise ? 0 : rows * area, budget: columnChunkElements)
    }

    /// The products one training step performs for an `inputSide`² input batch, one per
    /// chunk size (the largest chunk's): forward, weight gradient and (when needed) input gradient.
    /// Products that `DirectConvolution` computes instead are left out.
    public func gemmShapes(batch: Int, inputSide: Int, inputGradientNeeded: Bool = true) -> [GEMMShape] {
        let area = outputExtent(inputSide) * outputExtent(inputSide)
        let columnChunks = chunks(batch: batch, rows: columnRows, area: area)
        let forward = columnChunks.largest * area
        let weightGradient = GEMMShape(m: outChannels, n: columnRows, k: forward, transposeA: false, transposeB: true, calls: columnChunks.count)
        if runsDirect(width: inputSide) { return runsDirectWeightGradient(width: inputSide) ? [] : [weightGradient] }
        var shapes = [GEMMShape(m: outChannels, n: forward, k: columnRows, transposeA: false, transposeB: false, calls: columnChunks.count),
                      weightGradient]
        if inputGradientNeeded {
            if usesTransposedConvolution {
                let rows = outChannels * kernel * kernel
                let gradientChunks = chunks(batch: batch, rows: rows, area: area)
                shapes.append(GEMMShape(m: inChannels, n: gradientChunks.largest * area, k: rows, transposeA: false, transposeB: false,
                                        calls: gradientChunks.count))
            } else {
                shapes.append(GEMMShape(m: columnRows, n: forward, k: outChannels, transposeA: true, transposeB: false, calls: columnChunks.count))
            }
        }
        return shapes
    }

    /// Multiply-adds of one forward pass per image with an `height`×`width` input.
    public func multiplyAdds(height: Int, width: Int) -> Int {
        outChannels * columnRows * outputExtent(height) * outputExtent(width)
    }

    /// Floats held by this layer between steps: its output.
    var outputElements: Int { output.capacity }
    /// Floats of the flipped kernel the transposed convolution keeps.
    var kernelCopyElements: Int { flippedWeight.capacity }

    /// This layer's output buffer shaped for the input `x`.
    private func outputMap(for x: FeatureMap) -> FeatureMap {
        let height = outputExtent(x.height), width = outputExtent(x.width)
        return FeatureMap(data: output.reserve(outChannels * x.batch * height * width), channels: outChannels, batch: x.batch,
                          height: height, width: width)
    }

    /// Convolves `x`, which is kept (not copied) for `backward`.
    public func forward(_ x: FeatureMap) -> FeatureMap {
        precondition(x.channels == inChannels, "\(weight.name): input has \(x.channels) channels, expected \(inChannels)")
        savedInput = x
        if let sparse { return sparse.forward(x, output: output, workspace: columns) }
        let y = outputMap(for: x)
        if isPointwise {
            StepProfile.measure(.convolutionForward) {
                BLAS.gemm(.none, .none, m: outChannels, n: y.plane, k: columnRows,
                          a: weight.value.pointer, lda: columnRows, b: x.data, ldb: y.plane, c: y.data, ldc: y.plane)
            }
            return y
        }
        if runsDirect(width: x.width) {
            StepProfile.measure(.convolutionForward) {
                direct(x, kernel: weight.value.pointer, inChannels: inChannels, outChannels: outChannels, into: y, accumulate: false)
            }
            return y
        }
        let area = y.height * y.width
        let chunks = chunks(batch: x.batch, rows: columnRows, area: area)
        for index in 0..<chunks.count {
            let images = chunks[index], n = images.count * area
            let col = StepProfile.measure(.im2col) { im2col(x, images: images, output: y) }
            StepProfile.measure(.convolutionForward) {
                BLAS.gemm(.none, .none, m: outChannels, n: n, k: columnRows, a: weight.value.pointer, lda: columnRows,
                          b: col, ldb: n, c: y.data + images.lowerBound * area, ldc: y.plane)
            }
        }
        return y
    }

    /// `bn(self(x))`, or with `residual` `max(bn(self(x)) + residual, 0)`, as the network's
    /// forward pass needs it. In evaluation, on layers that run on `DirectConvolution`, the
    /// BatchNorm (its running statistics, its ReLU, the residual sum) is applied to each output
    /// row as it leaves the vector registers: one pass over the output instead of two, with
    /// every value rounded as the two steps round it (`FusedKernelTests`).
    public func forward(_ x: FeatureMap, normalisedBy bn: BatchNorm2d, training: Bool, residual: FeatureMap? = nil) -> FeatureMap {
        if training && sparse == nil && directLevel == 2 && runsDirect(width: x.width) {
            return forwardSummingMoments(x, normalisedBy: bn, residual: residual)
        }
        guard !training, sparse == nil, runsDirect(width: x.width) || evaluatesDirect && runsDirectForward(width: x.width),
              bn.appliesReLU || residual != nil else {
            return bn.forward(forward(x), training: training, residual: residual)
        }
        precondition(x.channels == inChannels && bn.channels == outChannels, "\(weight.name): input has \(x.channels) channels, expected \(inChannels)")
        savedInput = nil
        let y = outputMap(for: x)
        precondition(residual.map { $0.channels == outChannels && $0.plane == y.plane } ?? true, "\(weight.name): residual has the wrong shape")
        let affine = evaluationAffine.reserve(2 * outChannels)
        bn.evaluationAffine(scale: affine, shift: affine + outChannels)
        var epilogue = direct_convolution_epilogue(scale: affine, shift: affine + outChannels,
                                                   residual: residual.map { UnsafePointer($0.data) }, relu: 1, gate: nil, gradient: nil,
                                                   moments: nil)
        StepProfile.measure(.convolutionForward) {
            withUnsafePointer(to: &epilogue) { epilogue in
                direct(x, kernel: weight.value.pointer, inChannels: inChannels, outChannels: outChannels, into: y, accumulate: false,
                       epilogue: epilogue)
            }
        }
        return y
    }

    /// The training forward on `DirectConvolution` with AVX-512, whose stores also sum each
    /// output plane's values and squares, so that the BatchNorm after it needs no pass of its
    /// own to find the batch statistics.
    private func forwardSummingMoments(_ x: FeatureMap, normalisedBy bn: BatchNorm2d, residual: FeatureMap?) -> FeatureMap {
        precondition(x.channels == inChannels, "\(weight.name): input has \(x.channels) channels, expected \(inChannels)")
        savedInput = x
        let y = outputMap(for: x)
        let count = 2 * outChannels * x.batch
        let sums = UnsafeMutableRawPointer(planeMoments.reserve(2 * count)).bindMemory(to: Double.self, capacity: count)
        var epilogue = direct_convolution_epilogue(scale: nil, shift: nil, residual: nil, relu: 0, gate: nil, gradient: nil, moments: sums)
        StepProfile.measure(.convolutionForward) {
            sums.update(repeating: 0, count: count)
            withUnsafePointer(to: &epilogue) { epilogue in
                direct(x, kernel: weight.value.pointer, inChannels: inChannels, outChannels: outChannels, into: y, accumulate: false,
                       epilogue: epilogue)
            }
        }
        return bn.forward(y, training: true, residual: residual, planeMoments: UnsafePointer(sums))
    }

    /// Writes `∂L/∂W` into `weight.gradient` and returns `∂L/∂x`, stored in `gradient`
    /// (which must not hold `dy`).
    public func backward(_ dy: FeatureMap, into gradient: Workspace) -> FeatureMap {
        if let sparse, let x = savedInput {
            let dx = x.sameShape(at: gradient.reserve(x.count))
            sparse.backward(dy, dx: dx, accumulate: false, workspace: columns)
            return dx
        }
        let x = weightGradient(dy)
        let dx = x.sameShape(at: gradient.reserve(x.count))
        inputGradient(dy, into: dx, accumulate: false)
        return dx
    }

    /// `backward(_:into:)` for a residual block's first convolution under an identity shortcut:
    /// the returned `∂L/∂x` also holds the shortcut's gradient, `gradient` where `gate` (the
    /// block's output, after its final ReLU) is positive. A stride-1 input gradient on
    /// `DirectConvolution` adds it as each row is stored, which saves a pass that reads and
    /// writes `∂L/∂x` again; elsewhere that pass runs after. Both round `conv + gated` alike.
    public func backward(_ dy: FeatureMap, into gradient: Workspace, addingGated shortcut: UnsafePointer<Float>,
                         gate: UnsafePointer<Float>) -> FeatureMap {
        guard sparse == nil, stride == 1, runsDirect(width: dy.width) else {
            let dx = backward(dy, into: gradient)
            ReLU.accumulateBackward(shortcut, output: gate, into: dx.data, count: dx.count)
            return dx
        }
        let x = weightGradient(dy)
        let dx = x.sameShape(at: gradient.reserve(x.count))
        var epilogue = direct_convolution_epilogue(scale: nil, shift: nil, residual: nil, relu: 0, gate: gate, gradient: shortcut,
                                                   moments: nil)
        withUnsafePointer(to: &epilogue) { inputGradient(dy, into: dx, accumulate: false, epilogue: $0) }
        return dx
    }

    /// Writes `∂L/∂W` into `weight.gradient` and adds `∂L/∂x` to `dx`: where a residual
    /// block's two paths meet, with no buffer and no pass of their own.
    public func backward(_ dy: FeatureMap, addingTo dx: FeatureMap) {
        if let sparse { return sparse.backward(dy, dx: dx, accumulate: true, workspace: columns) }
        let x = weightGradient(dy)
        precondition(dx.channels == x.channels && dx.plane == x.plane, "\(weight.name): input gradient has the wrong shape")
        inputGradient(dy, into: dx, accumulate: true)
    }

    /// Writes `∂L/∂W` into `weight.gradient` only: the stem's input is the data, whose
    /// gradient nobody needs.
    public func backwardWeightOnly(_ dy: FeatureMap) {
        if let sparse { return sparse.backward(dy, dx: nil, accumulate: false, workspace: columns) }
        _ = weightGradient(dy)
    }

    /// `∂L/∂W = Σ_chunks dY_chunk × col_chunkᵀ`, the columns rebuilt from the saved input;
    /// returns the saved input.
    private func weightGradient(_ dy: FeatureMap) -> FeatureMap {
        guard let x = savedInput else { preconditionFailure("\(weight.name): backward before forward") }
        let gradient = weight.gradient.pointer
        if runsDirectWeightGradient(width: x.width) {
            directWeightGradient(x, dy, into: gradient)
            return x
        }
        if isPointwise {
            StepProfile.measure(.convolutionWeightGradient) {
                BLAS.gemm(.none, .transpose, m: outChannels, n: columnRows, k: dy.plane,
                          a: dy.data, lda: dy.plane, b: x.data, ldb: dy.plane, c: gradient, ldc: columnRows)
            }
            return x
        }
        let area = dy.height * dy.width
        let chunks = chunks(batch: x.batch, rows: columnRows, area: area)
        for index in 0..<chunks.count {
            let images = chunks[index], n = images.count * area
            let col = StepProfile.measure(.im2col) { im2col(x, images: images, output: dy) }
            // Each chunk after the first adds to the sum: one fixed order, whatever the threads.
            StepProfile.measure(.convolutionWeightGradient) {
                BLAS.gemm(.none, .transpose, m: outChannels, n: columnRows, k: n,
                          a: dy.data + images.lowerBound * area, lda: dy.plane, b: col, ldb: n,
                          beta: index == 0 ? 0 : 1, c: gradient, ldc: columnRows)
            }
        }
        return x
    }

    /// `∂L/∂x` written to `dx`, or added to it when `accumulate`.
    /// `epilogue` replaces the plain stores of the stride-1 input gradient on `DirectConvolution`,
    /// the only route that takes one.
    private func inputGradient(_ dy: FeatureMap, into dx: FeatureMap, accumulate: Bool,
                               epilogue: UnsafePointer<direct_convolution_epilogue>? = nil) {
        precondition(epilogue == nil || stride == 1 && runsDirect(width: dx.width),
                     "\(weight.name): only a stride-1 input gradient on DirectConvolution takes an epilogue")
        let beta: Float = accumulate ? 1 : 0
        let area = dy.height * dy.width
        if isPointwise {
            StepProfile.measure(.convolutionInputGradient) {
                BLAS.gemm(.transpose, .none, m: columnRows, n: dy.plane, k: outChannels, a: weight.value.pointer, lda: columnRows,
                          b: dy.data, ldb: dy.plane, beta: beta, c: dx.data, ldc: dx.plane)
            }
        } else if runsDirect(width: dx.width) && stride == 2 {
            directStrideTwoInputGradient(dy, into: dx, accumulate: accumulate)
        } else if runsDirect(width: dx.width) {
            let flipped = StepProfile.measure(.im2col) { flippedKernel() }
            StepProfile.measure(.convolutionInputGradient) {
                direct(dy, kernel: flipped, inChannels: outChannels, outChannels: inChannels, into: dx, accumulate: accumulate,
                       epilogue: epilogue)
            }
        } else if usesTransposedConvolution {
            let flipped = StepProfile.measure(.im2col) { flippedKernel() }
            let rows = outChannels * kernel * kernel
            let chunks = chunks(batch: dy.batch, rows: rows, area: area)
            for index in 0..<chunks.count {
                let images = chunks[index], n = images.count * area
                let dyColumns = StepProfile.measure(.im2col) { im2col(dy, images: images, output: dx) }
                StepProfile.measure(.convolutionInputGradient) {
                    BLAS.gemm(.none, .none, m: inChannels, n: n, k: rows, a: flipped, lda: rows, b: dyColumns, ldb: n,
                              beta: beta, c: dx.data + images.lowerBound * area, ldc: dx.plane)
                }
            }
        } else {
            let chunks = chunks(batch: dy.batch, rows: columnRows, area: area)
            for index in 0..<chunks.count {
                let images = chunks[index], n = images.count * area
                let dcol = columns.reserve(columnRows * n)
                StepProfile.measure(.convolutionInputGradient) {
                    BLAS.gemm(.transpose, .none, m: columnRows, n: n, k: outChannels, a: weight.value.pointer, lda: columnRows,
                              b: dy.data + images.lowerBound * area, ldb: dy.plane, c: dcol, ldc: n)
                }
                StepProfile.measure(.col2im) { col2im(dcol, images: images, output: dy, into: dx, accumulate: accumulate) }
            }
        }
    }

    /// `y = x ⋆ kernel` (3×3, padding 1, this layer's stride; the transposed convolution of a
    /// stride-1 input gradient passes its own kernel and channels) on `DirectConvolution`,
    /// images shared out over the threads, each with its own bordered copy in the column
    /// workspace. Each output is summed by one thread in a fixed order, so the bits do not
    /// depend on the thread count.
    private func direct(_ x: FeatureMap, kernel: UnsafePointer<Float>, inChannels: Int, outChannels: Int, into y: FeatureMap,
                        accumulate: Bool, epilogue: UnsafePointer<direct_convolution_epilogue>? = nil) {
        let perThread = direct_convolution_scratch_floats(Int32(inChannels), Int32(x.height), Int32(x.width))
        let threads = Parallel.threads
        let scratch = columns.reserve(perThread * threads)
        let level = Int32(directLevel)
        var packed: UnsafeMutablePointer<Float>?
        if level == 2 && outChannels >= 16 && direct_convolution_packs(Int32(x.width), Int32(stride)) != 0 {
            let kernelPacked = packedKernel.reserve(direct_convolution_packed_floats(Int32(inChannels), Int32(outChannels)))
            direct_convolution_pack(kernel, kernelPacked, Int32(inChannels), Int32(outChannels))
            packed = kernelPacked
        }
        Parallel.forEachPart(x.batch, threads: threads) { part, images in
            direct_convolution_3x3(x.data, kernel, packed, y.data, Int32(inChannels), Int32(outChannels), Int32(x.batch),
                                   Int32(x.height), Int32(x.width), Int32(stride), Int32(images.lowerBound), Int32(images.upperBound),
                                   scratch + part * perThread, accumulate ? 1 : 0, epilogue, level)
        }
    }

    /// `∂L/∂x` of a stride-2 layer on `DirectConvolution`, 16 input channels per vector: images
    /// shared out over the threads, each bordering its own images' `∂L/∂Y`. Each value is summed
    /// by one thread in a fixed order, so the bits do not depend on the thread count.
    private func directStrideTwoInputGradient(_ dy: FeatureMap, into dx: FeatureMap, accumulate: Bool) {
        let packed = StepProfile.measure(.im2col) {
            let packed = packedKernel.reserve(direct_convolution_packed_floats(Int32(outChannels), Int32(inChannels)))
            direct_convolution_pack_transposed(weight.value.pointer, packed, Int32(inChannels), Int32(outChannels))
            return packed
        }
        let perThread = direct_convolution_stride2_gradient_scratch_floats(Int32(outChannels), Int32(dx.height), Int32(dx.width))
        let threads = Parallel.threads
        let scratch = columns.reserve(perThread * threads)
        StepProfile.measure(.convolutionInputGradient) {
            Parallel.forEachPart(dx.batch, threads: threads) { part, images in
                direct_convolution_3x3_stride2_input_gradient(dy.data, packed, dx.data, Int32(inChannels), Int32(outChannels),
                                                              Int32(dx.batch), Int32(dx.height), Int32(dx.width),
                                                              Int32(images.lowerBound), Int32(images.upperBound),
                                                              scratch + part * perThread, accumulate ? 1 : 0)
            }
        }
    }

    /// `∂L/∂W` on `DirectConvolution`, read from the saved input in place, the output channels
    /// shared out over the threads (for the channel-vectorised kernels, after `∂L/∂Y` is
    /// transposed image by image, the input channels: a 16-channel layer is one block of output
    /// channels). Each weight is summed by one thread in an order fixed by the shapes, so the
    /// bits do not depend on the thread count.
    private func directWeightGradient(_ x: FeatureMap, _ dy: FeatureMap, into gradient: UnsafeMutablePointer<Float>) {
        let (c, o, n, h, w, s) = (Int32(inChannels), Int32(outChannels), Int32(x.batch), Int32(x.height), Int32(x.width), Int32(stride))
        if runsChannelWeightGradient(width: x.width) {
            let scratch = columns.reserve(direct_convolution_channel_gradient_scratch_floats(c, o, n, h, w, s))
            StepProfile.measure(.im2col) {
                Parallel.forEachRange(x.batch) { images in
                    direct_convolution_transpose_gradient(dy.data, scratch, o, n, h, w, s, Int32(images.lowerBound), Int32(images.upperBound))
                }
            }
            StepProfile.measure(.convolutionWeightGradient) {
                Parallel.forEachRange(inChannels) { channels in
                    direct_convolution_3x3_channel_weight_gradient(x.data, gradient, c, o, n, h, w, s, Int32(channels.lowerBound),
                                                                   Int32(channels.upperBound), scratch)
                }
            }
            return
        }
        let scratch = columns.reserve(direct_convolution_weight_gradient_scratch_floats(c, o))
        StepProfile.measure(.convolutionWeightGradient) {
            Parallel.forEachRange(outChannels) { outputs in
                direct_convolution_3x3_weight_gradient(x.data, dy.data, gradient, c, o, n, h, w, Int32(outputs.lowerBound),
                                                       Int32(outputs.upperBound), scratch)
            }
        }
    }

    /// `W̃[c, (o, i, j)] = W[o, c, k−1−i, k−1−j]`: the kernel of the transposed convolution.
    private func flippedKernel() -> UnsafeMutablePointer<Float> {
        let k = kernel, area = k * k
        let flipped = flippedWeight.reserve(inChannels * outChannels * area)
        let w = weight.value.pointer
        for o in 0..<outChannels {
            for c in 0..<inChannels {
                let source = w + (o * inChannels + c) * area, target = flipped + (c * outChannels + o) * area
                for t in 0..<area { target[t] = source[area - 1 - t] }
            }
        }
        return flipped
    }

    /// The output columns `ox` whose input column `ox·stride − padding + kj` lies inside the
    /// image; outside that range the tap reads zero padding.
    private func validColumns(tap kj: Int, inputWidth: Int, outputWidth: Int) -> Range<Int> {
        let first = Swift.max(0, ceilDivide(padding - kj, stride))
        let last = floorDivide(inputWidth - 1 + padding - kj, stride) + 1
        return first..<Swift.max(first, Swift.min(outputWidth, last))
    }

    /// The column matrix of the images `images`: row `(c, ki, kj)` holds, for every output
    /// position of those images, the input value that kernel tap sees (or zero in the
    /// padding). `x` may have any channel count (the transposed convolution passes `∂L/∂Y`);
    /// `y` gives the output extents.
    private func im2col(_ x: FeatureMap, images: Range<Int>, output y: FeatureMap) -> UnsafeMutablePointer<Float> {
        let k = kernel, s = stride, p = padding
        let n = x.batch, h = x.height, w = x.width, oh = y.height, ow = y.width
        let columnCount = images.count * oh * ow, rowCount = x.channels * k * k
        let col = columns.reserve(rowCount * columnCount)
        let source = x.data
        Parallel.forEachRange(rowCount) { rows in
            for r in rows {
                let c = r / (k * k), ki = (r / k) % k, kj = r % k
                let valid = self.validColumns(tap: kj, inputWidth: w, outputWidth: ow)
                var dst = col + r * columnCount
                if s == 1 && oh == h && ow == w {
                    for image in images {
                        Self.shiftedPlane(source + (c * n + image) * h * w, into: dst, height: h, width: w,
                                          rowShift: ki - p, columnShift: kj - p)
                        dst += oh * ow
                    }
                    continue
                }
                for image in images {
                    let plane = source + (c * n + image) * h * w
                    for oy in 0..<oh {
                        let iy = oy * s - p + ki
                        if iy < 0 || iy >= h {
                            dst.update(repeating: 0, count: ow)
                        } else {
                            let row = plane + iy * w - p + kj
                            dst.update(repeating: 0, count: valid.lowerBound)
                            if s == 1 {
                                (dst + valid.lowerBound).update(from: row + valid.lowerBound, count: valid.count)
                            } else {
                                for ox in valid { dst[ox] = row[ox &* s] }
                            }
                            (dst + valid.upperBound).update(repeating: 0, count: ow - valid.upperBound)
                        }
                        dst += ow
                    }
                }
            }
        }
        return col
    }

    /// `dst[y, x] = plane[y + dy, x + dx]`, zero outside the plane, for one `height`×`width` map.
    /// With equal input and output sizes the valid rows form one contiguous run of the source
    /// shifted by `dy·width + dx`, so it is one copy (instead of one small copy per row), after
    /// which the `|dx|` columns that wrapped round from the neighbouring row are zeroed.
    @inline(__always)
    private static func shiftedPlane(_ plane: UnsafeMutablePointer<Float>, into dst: UnsafeMutablePointer<Float>,
                                     height h: Int, width w: Int, rowShift dy: Int, columnShift dx: Int) {
        let firstRow = Swift.max(0, -dy), endRow = Swift.min(h, h - dy)
        guard firstRow < endRow else {
            dst.update(repeating: 0, count: h * w)
            return
        }
        dst.update(repeating: 0, count: firstRow * w)
        (dst + endRow * w).update(repeating: 0, count: (h - endRow) * w)
        // The run may start one element before the plane or end one after it; those
        // elements are wrapped columns that are zeroed below anyway, so they are skipped.
        var start = firstRow * w, end = endRow * w
        let offset = dy * w + dx
        if start + offset < 0 { start = -offset }
        if end + offset > h * w { end = h * w - offset }
        (dst + start).update(from: plane + start + offset, count: end - start)
        if dx != 0 {
            let columns = dx > 0 ? (w - dx)..<w : 0..<(-dx)
            for y in firstRow..<endRow {
                for x in columns { dst[y * w + x] = 0 }
            }
        }
    }

    /// The adjoint of `im2col` for the images `images`: every column-matrix entry is added
    /// back to the input position it was read from, into zeroed planes unless `accumulate`.
    /// Each thread owns whole input channels, so no sums race.
    private func col2im(_ dcol: UnsafeMutablePointer<Float>, images: Range<Int>, output y: FeatureMap, into dx: FeatureMap,
                        accumulate: Bool) {
        let k = kernel, s = stride, p = padding
        let n = dx.batch, h = dx.height, w = dx.width, oh = y.height, ow = y.width
        let columnCount = images.count * oh * ow
        let target = dx.data
        Parallel.forEachRange(inChannels) { channels in
            for c in channels {
                let channelBase = target + c * n * h * w
                if !accumulate { (channelBase + images.lowerBound * h * w).update(repeating: 0, count: images.count * h * w) }
                for ki in 0..<k {
                    for kj in 0..<k {
                        let valid = self.validColumns(tap: kj, inputWidth: w, outputWidth: ow)
                        var src = UnsafePointer(dcol + ((c * k + ki) * k + kj) * columnCount)
                        for image in images {
                            let plane = channelBase + image * h * w
                            for oy in 0..<oh {
                                let iy = oy * s - p + ki
                                if iy >= 0 && iy < h {
                                    let row = plane + iy * w - p + kj
                                    if s == 1 {
                                        for ox in valid { row[ox] += src[ox] }
                                    } else {
                                        for ox in valid { row[ox &* s] += src[ox] }
                                    }
                                }
                                src += ow
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How a batch is cut into chunks of whole images so that one chunk's column matrix holds at
/// most `budget` elements: as few chunks as that allows, of equal size to within one image
/// (chunk `i` is `batch·i/count ..< batch·(i+1)/count`). The cut depends on the shapes and
/// the budget alone, so sums over chunks run in the same order whatever the threads.
public struct ImageChunks: Sendable {
    /// The images cut and the number of chunks.
    public let batch: Int, count: Int

    /// Chunks of `batch` images of `elementsPerImage` column-matrix elements each.
    public init(batch: Int, elementsPerImage: Int, budget: Int) {
        let perChunk = elementsPerImage > 0 ? Swift.max(1, budget / elementsPerImage) : Swift.max(1, batch)
        self.batch = batch
        count = (batch + perChunk - 1) / perChunk
    }

    /// The images of chunk `index`.
    public subscript(index: Int) -> Range<Int> { (batch * index / count)..<(batch * (index + 1) / count) }

    /// Images in the largest chunk.
    public var largest: Int { count == 0 ? 0 : (batch + count - 1) / count }
}

@inline(__always) func floorDivide(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

@inline(__always) func ceilDivide(_ a: Int, _ b: Int) -> Int { -floorDivide(-a, b) }
