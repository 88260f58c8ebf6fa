/// A 2-D convolution without bias (every convolution of the CIFAR ResNet is followed by
/// BatchNorm), with any kernel size, stride and zero padding.
///
/// Forward: `Y[out, N·Ho·Wo] = W[out, in·k·k] × col[in·k·k, N·Ho·Wo]`, one GEMM for the whole
/// batch thanks to the channel-major layout. Each layer keeps its forward `col` for the
/// weight gradient (`dY × colᵀ`): recomputing it cost ~3% of a step; keeping it costs about
/// 2 GB at width 64, batch 128.
///
/// The input gradient of a stride-1 "same" convolution (every 3×3 conv but the three that
/// downsample) is itself a convolution of `∂L/∂Y` with the flipped, transposed kernel:
/// `dX[in, ·] = W̃[in, out·k·k] × col(dY)`. That GEMM has the forward's efficient shape
/// (K = out·k·k instead of K = out) and writes `dX` directly, with no scatter-add pass.
/// Other convolutions take `dcol = Wᵀ·dY` followed by `col2im`.
public final class Conv2d {
    /// Input channels, output channels, kernel size (square), stride and zero padding.
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    /// The weight, shaped `[out, in, k, k]` like PyTorch's.
    public let weight: Parameter
    private let output = Workspace()
    private let inputGradient = Workspace()
    private let flippedWeight = Workspace()
    private let columnsOfInput = Workspace()
    private var savedInput: FeatureMap?

    /// A convolution whose weight is named `name` (e.g. `layer1.0.conv1.weight`), zero-initialised.
    public init(name: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.weight = Parameter(name: name, shape: [outChannels, inChannels, kernel, kernel], prunable: true)
    }

    /// The output extent along one axis for an input extent `size`.
    public func outputExtent(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }

    /// A 1×1, stride-1, unpadded convolution reads its input directly as the column matrix.
    private var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    private var columnRows: Int { inChannels * kernel * kernel }

    /// Whether the input gradient is computed as a convolution (stride 1, output size = input size).
    private var usesTransposedConvolution: Bool { kernel > 1 && stride == 1 && 2 * padding == kernel - 1 }

    /// One matrix product of a training step: `m×k` times `k×n`, with operand transposes.
    public struct GEMMShape: Hashable, Sendable {
        /// The product's dimensions.
        public var m: Int, n: Int, k: Int
        /// Whether A and B are used transposed.
        public var transposeA: Bool, transposeB: Bool
    }

    /// The products one training step performs for an `inputSide`² input batch: forward,
    /// weight gradient and (when needed) input gradient.
    public func gemmShapes(batch: Int, inputSide: Int, inputGradientNeeded: Bool = true) -> [GEMMShape] {
        let columns = batch * outputExtent(inputSide) * outputExtent(inputSide)
        var shapes = [GEMMShape(m: outChannels, n: columns, k: columnRows, transposeA: false, transposeB: false),
                      GEMMShape(m: outChannels, n: columnRows, k: columns, transposeA: false, transposeB: true)]
        if inputGradientNeeded {
            shapes.append(usesTransposedConvolution
                ? GEMMShape(m: inChannels, n: columns, k: outChannels * kernel * kernel, transposeA: false, transposeB: false)
                : GEMMShape(m: columnRows, n: columns, k: outChannels, transposeA: true, transposeB: false))
        }
        return shapes
    }

    /// Multiply-adds of one forward pass per image with an `height`×`width` input.
    public func multiplyAdds(height: Int, width: Int) -> Int {
        outChannels * columnRows * outputExtent(height) * outputExtent(width)
    }

    /// Convolves `x`. The input and its column matrix are kept for `backward`.
    public func forward(_ x: FeatureMap) -> FeatureMap {
        precondition(x.channels == inChannels, "\(weight.name): input has \(x.channels) channels, expected \(inChannels)")
        savedInput = x
        let y = FeatureMap(
            data: output.reserve(outChannels * x.batch * outputExtent(x.height) * outputExtent(x.width)),
            channels: outChannels, batch: x.batch, height: outputExtent(x.height), width: outputExtent(x.width))
        let columns = y.plane
        let col = isPointwise ? UnsafePointer(x.data) : UnsafePointer(im2col(x, output: y, scratch: columnsOfInput))
        BLAS.gemm(.none, .none, m: outChannels, n: columns, k: columnRows,
                  a: weight.value.pointer, lda: columnRows, b: col, ldb: columns, c: y.data, ldc: columns)
        return y
    }

    /// Writes `∂L/∂W` into `weight.gradient` and returns `∂L/∂x`.
    public func backward(_ dy: FeatureMap, scratch: Workspace) -> FeatureMap {
        let x = weightGradient(dy)
        let columns = dy.plane
        let dx = x.sameShape(at: inputGradient.reserve(x.count))
        if usesTransposedConvolution {
            let flipped = flippedKernel()
            let dyColumns = im2col(dy, output: x, scratch: scratch)
            BLAS.gemm(.none, .none, m: inChannels, n: columns, k: outChannels * kernel * kernel,
                      a: flipped, lda: outChannels * kernel * kernel, b: dyColumns, ldb: columns, c: dx.data, ldc: columns)
        } else if isPointwise {
            BLAS.gemm(.transpose, .none, m: columnRows, n: columns, k: outChannels,
                      a: weight.value.pointer, lda: columnRows, b: dy.data, ldb: columns, c: dx.data, ldc: columns)
        } else {
            // The column matrix is no longer needed, so its gradient takes the same memory.
            let dcol = scratch.reserve(columnRows * columns)
            BLAS.gemm(.transpose, .none, m: columnRows, n: columns, k: outChannels,
                      a: weight.value.pointer, lda: columnRows, b: dy.data, ldb: columns, c: dcol, ldc: columns)
            col2im(dcol, output: dy, into: dx)
        }
        return dx
    }

    /// Writes `∂L/∂W` into `weight.gradient` only: the stem's input is the data, whose
    /// gradient nobody needs.
    public func backwardWeightOnly(_ dy: FeatureMap) {
        _ = weightGradient(dy)
    }

    /// `∂L/∂W = dY × colᵀ` with the forward's column matrix; returns the saved input.
    private func weightGradient(_ dy: FeatureMap) -> FeatureMap {
        guard let x = savedInput else { preconditionFailure("\(weight.name): backward before forward") }
        let columns = dy.plane
        let col = isPointwise ? UnsafePointer(x.data) : UnsafePointer(columnsOfInput.pointer)
        BLAS.gemm(.none, .transpose, m: outChannels, n: columnRows, k: columns,
                  a: dy.data, lda: columns, b: col, ldb: columns, c: weight.gradient.pointer, ldc: columnRows)
        return x
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

    /// Row `(c, ki, kj)` of the column matrix holds, for every output position, the input
    /// value that kernel tap sees (or zero in the padding). `x` may have any channel count
    /// (the transposed convolution passes `∂L/∂Y`); `y` gives the output extents.
    private func im2col(_ x: FeatureMap, output y: FeatureMap, scratch: Workspace) -> UnsafeMutablePointer<Float> {
        let k = kernel, s = stride, p = padding
        let n = x.batch, h = x.height, w = x.width, oh = y.height, ow = y.width
        let columns = n * oh * ow, rowCount = x.channels * k * k
        let col = scratch.reserve(rowCount * columns)
        let source = x.data
        Parallel.forEachRange(rowCount) { rows in
            for r in rows {
                let c = r / (k * k), ki = (r / k) % k, kj = r % k
                let valid = self.validColumns(tap: kj, inputWidth: w, outputWidth: ow)
                var dst = col + r * columns
                if s == 1 && oh == h && ow == w {
                    for image in 0..<n {
                        Self.shiftedPlane(source + (c * n + image) * h * w, into: dst, height: h, width: w,
                                          rowShift: ki - p, columnShift: kj - p)
                        dst += oh * ow
                    }
                    continue
                }
                for image in 0..<n {
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

    /// The adjoint of `im2col`: every column-matrix entry is added back to the input position
    /// it was read from. Each thread owns whole input channels, so no sums race.
    private func col2im(_ dcol: UnsafeMutablePointer<Float>, output y: FeatureMap, into dx: FeatureMap) {
        let k = kernel, s = stride, p = padding
        let n = dx.batch, h = dx.height, w = dx.width, oh = y.height, ow = y.width
        let columns = n * oh * ow
        let target = dx.data
        Parallel.forEachRange(inChannels) { channels in
            for c in channels {
                let channelBase = target + c * n * h * w
                channelBase.update(repeating: 0, count: n * h * w)
                for ki in 0..<k {
                    for kj in 0..<k {
                        let valid = self.validColumns(tap: kj, inputWidth: w, outputWidth: ow)
                        var src = UnsafePointer(dcol + ((c * k + ki) * k + kj) * columns)
                        for image in 0..<n {
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

@inline(__always) func floorDivide(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

@inline(__always) func ceilDivide(_ a: Int, _ b: Int) -> Int { -floorDivide(-a, b) }
