/// A 2-D convolution without bias (every convolution of the CIFAR ResNet is followed by
/// BatchNorm), with any kernel size, stride and zero padding.
///
/// Forward: `Y[out, N·Ho·Wo] = W[out, in·k·k] × col[in·k·k, N·Ho·Wo]`, one GEMM for the whole
/// batch thanks to the channel-major layout. Backward recomputes `col` from the saved input
/// rather than keeping one per layer: it costs a memory pass but saves gigabytes at width 64.
public final class Conv2d {
    /// Input channels, output channels, kernel size (square), stride and zero padding.
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    /// The weight, shaped `[out, in, k, k]` like PyTorch's.
    public let weight: Parameter
    private let output = Workspace()
    private let inputGradient = Workspace()
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

    /// Multiply-adds of one forward pass per image with an `height`×`width` input.
    public func multiplyAdds(height: Int, width: Int) -> Int {
        outChannels * columnRows * outputExtent(height) * outputExtent(width)
    }

    /// Convolves `x`; `scratch` holds the column matrix. The input is kept for `backward`.
    public func forward(_ x: FeatureMap, scratch: Workspace) -> FeatureMap {
        precondition(x.channels == inChannels, "\(weight.name): input has \(x.channels) channels, expected \(inChannels)")
        savedInput = x
        let y = FeatureMap(
            data: output.reserve(outChannels * x.batch * outputExtent(x.height) * outputExtent(x.width)),
            channels: outChannels, batch: x.batch, height: outputExtent(x.height), width: outputExtent(x.width))
        let columns = y.plane
        let col = isPointwise ? UnsafePointer(x.data) : UnsafePointer(im2col(x, output: y, scratch: scratch))
        BLAS.gemm(.none, .none, m: outChannels, n: columns, k: columnRows,
                  a: weight.value.pointer, lda: columnRows, b: col, ldb: columns, c: y.data, ldc: columns)
        return y
    }

    /// Writes `∂L/∂W` into `weight.gradient` and returns `∂L/∂x` (nil when not asked for, as
    /// for the stem, whose input is the data).
    public func backward(_ dy: FeatureMap, scratch: Workspace, inputGradientNeeded: Bool = true) -> FeatureMap? {
        guard let x = savedInput else { preconditionFailure("\(weight.name): backward before forward") }
        let columns = dy.plane
        let col = isPointwise ? UnsafePointer(x.data) : UnsafePointer(im2col(x, output: dy, scratch: scratch))
        BLAS.gemm(.none, .transpose, m: outChannels, n: columnRows, k: columns,
                  a: dy.data, lda: columns, b: col, ldb: columns, c: weight.gradient.pointer, ldc: columnRows)
        guard inputGradientNeeded else { return nil }
        let dx = x.sameShape(at: inputGradient.reserve(x.count))
        if isPointwise {
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

    /// The output columns `ox` whose input column `ox·stride − padding + kj` lies inside the
    /// image; outside that range the tap reads zero padding.
    private func validColumns(tap kj: Int, inputWidth: Int, outputWidth: Int) -> Range<Int> {
        let first = Swift.max(0, ceilDivide(padding - kj, stride))
        let last = floorDivide(inputWidth - 1 + padding - kj, stride) + 1
        return first..<Swift.max(first, Swift.min(outputWidth, last))
    }

    /// Row `(c, ki, kj)` of the column matrix holds, for every output position, the input
    /// value that kernel tap sees (or zero in the padding).
    private func im2col(_ x: FeatureMap, output y: FeatureMap, scratch: Workspace) -> UnsafeMutablePointer<Float> {
        let k = kernel, s = stride, p = padding
        let n = x.batch, h = x.height, w = x.width, oh = y.height, ow = y.width
        let columns = n * oh * ow
        let col = scratch.reserve(columnRows * columns)
        let source = x.data
        Parallel.forEachRange(columnRows) { rows in
            for r in rows {
                let c = r / (k * k), ki = (r / k) % k, kj = r % k
                let valid = self.validColumns(tap: kj, inputWidth: w, outputWidth: ow)
                var dst = col + r * columns
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
