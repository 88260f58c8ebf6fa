import CSparse

/// The sparse path of one masked convolution: direct convolution over the kept weights only
/// (no column matrix), in the batch-inner layout of `SparsePattern`. A `Conv2d` whose
/// `sparse` is set runs its forward and backward passes here.
///
/// - forward: the input is copied into the padded batch-inner layout, each output channel
///   gathers its kept taps, and the result is copied back to channel-major;
/// - backward: the weight gradient is computed at kept weights only (pruned ones get exactly
///   zero), then the input gradient as a gather over the transposed taps.
///
/// Every output element is summed by one thread in the pattern's order, so results do not
/// depend on the thread count. Scratch memory comes from the network's shared column
/// workspace (one layer works at a time): the padded input, then the input gradient, in one
/// region; the output or padded output gradient in the other.
public final class SparseConvolution {
    /// The convolution's weight (values read every step, gradient written).
    public let weight: Parameter
    /// The mask the pattern was built from; a different one makes the layout stale.
    private let mask: Tensor
    private let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    private var pattern: SparsePattern?
    private var forwardValues: [Float] = [], backwardValues: [Float] = []
    private var savedInput: FeatureMap?

    /// The sparse path of `convolution`, which must carry a mask.
    public init(_ convolution: Conv2d) throws(ModelError) {
        guard let mask = convolution.weight.mask else {
            throw .invalidConfiguration("\(convolution.weight.name) has no mask; only masked convolutions run sparse")
        }
        weight = convolution.weight
        self.mask = mask
        inChannels = convolution.inChannels
        outChannels = convolution.outChannels
        kernel = convolution.kernel
        stride = convolution.stride
        padding = convolution.padding
    }

    /// Weights the mask keeps.
    public var kept: Int { weight.keptCount }

    private func layout(height: Int, width: Int) -> SparsePattern {
        precondition(weight.mask === mask, "\(weight.name): its mask changed after the sparse path was chosen; choose again")
        if let pattern, pattern.height == height, pattern.width == width { return pattern }
        let built = SparsePattern(mask: mask.pointer, inChannels: inChannels, outChannels: outChannels, kernel: kernel,
                                  stride: stride, padding: padding, height: height, width: width)
        forwardValues = [Float](repeating: 0, count: built.kept)
        backwardValues = forwardValues
        pattern = built
        return built
    }

    /// Scratch for `parts` lane blocks worked on at once, two regions each: (padded input /
    /// input gradient, output / padded output gradient); then, for the backward pass, each
    /// block's kept-weight sums (`sums` floats per block).
    private struct Scratch {
        let base: UnsafeMutablePointer<Float>
        let first: Int, second: Int, parts: Int

        init(_ pattern: SparsePattern, inChannels: Int, outChannels: Int, parts: Int, sums: Int = 0, in workspace: Workspace) {
            let lanes = SparseConvolution.blockLanes
            first = Swift.max(pattern.paddedInputPositions, inChannels * pattern.height * pattern.width) * lanes
            second = Swift.max(pattern.paddedGradientPositions, outChannels * pattern.outputHeight * pattern.outputWidth) * lanes
            self.parts = parts
            base = workspace.reserve(parts * (first + second) + sums)
        }

        func regions(_ part: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
            let start = base + part * (first + second)
            return (start, start + first)
        }

        /// Where the block sums begin.
        var sums: UnsafeMutablePointer<Float> { base + parts * (first + second) }
    }

    /// Runs `body` for every lane block of a batch of `batch` images (its index and images),
    /// the blocks shared out over the threads in contiguous runs, one run per part (`part`
    /// numbers the scratch to use). A block is one thread's work from copy-in to copy-out: the
    /// threads meet once per pass instead of at every step of every block, and each works in
    /// its own core's caches. Where there are fewer blocks than threads, each part's steps
    /// share out the threads left over.
    private static func forEachBlock(_ batch: Int, parts: Int, _ body: (_ part: Int, _ index: Int, _ images: (first: Int, count: Int)) -> Void) {
        let blocks = Self.blocks(batch), threads = Parallel.threads
        Parallel.forEachPart(blocks.count, threads: parts) { part, range in
            Parallel.withThreads(Swift.max(1, threads / parts)) {
                for index in range { body(part, index, blocks[index]) }
            }
        }
    }

    /// Parts the blocks of a batch of `batch` images are shared out in.
    private static func parts(_ batch: Int) -> Int {
        Swift.max(1, Swift.min(Parallel.threads, blocks(batch).count))
    }

    /// Images per block: the batch is worked through 16 images (two vectors) at a time, so
    /// that one block's whole input (e.g. 256 channels of 10×10 positions, 1.6 MB) stays in
    /// the L2 cache while every output channel gathers from it. The blocks' order is fixed.
    static let blockLanes = 16

    /// The lane blocks of a batch: first image and count.
    private static func blocks(_ batch: Int) -> [(first: Int, count: Int)] {
        Swift.stride(from: 0, to: batch, by: blockLanes).map { ($0, Swift.min(blockLanes, batch - $0)) }
    }

    /// Convolves `x` (kept for `backward`) into `output`, using `workspace` as scratch.
    public func forward(_ x: FeatureMap, output: Workspace, workspace: Workspace) -> FeatureMap {
        savedInput = x
        let pattern = layout(height: x.height, width: x.width)
        let lanes = Self.blockLanes
        let area = pattern.outputHeight * pattern.outputWidth
        let y = FeatureMap(data: output.reserve(outChannels * x.batch * area), channels: outChannels, batch: x.batch,
                           height: pattern.outputHeight, width: pattern.outputWidth)
        // A layer without kept weights (SynFlow removes the 1×1 shortcuts at 5%) outputs zeros,
        // as the gather would, without the layout copies.
        if pattern.kept == 0 {
            y.data.update(repeating: 0, count: y.count)
            return y
        }
        let parts = Self.parts(x.batch)
        let scratch = Scratch(pattern, inChannels: inChannels, outChannels: outChannels, parts: parts, in: workspace)
        gatherValues(pattern.rows.weightIndices, into: &forwardValues)
        let values = forwardValues
        StepProfile.measure(.sparseForward) {
            Self.forEachBlock(x.batch, parts: parts) { part, _, block in
                let (input, result) = scratch.regions(part)
                Self.toBatchInner(x, images: block, into: input, halo: padding)
                Self.gather(pattern.rows, groups: outChannels, at: pattern.outputPositions, from: input, values: values,
                            into: result, groupStride: area * lanes)
                Self.fromBatchInner(result, into: y, images: block, accumulate: false)
            }
        }
        return y
    }

    /// Writes `∂L/∂W` (zero at pruned weights) into `weight.gradient` and, when `dx` is given,
    /// writes or (when `accumulate`) adds `∂L/∂x` into it.
    public func backward(_ dy: FeatureMap, dx: FeatureMap?, accumulate: Bool, workspace: Workspace) {
        guard let x = savedInput else { preconditionFailure("\(weight.name): backward before forward") }
        let pattern = layout(height: x.height, width: x.width)
        if pattern.kept == 0 {
            weight.gradient.fill(0)
            if let dx, !accumulate { dx.data.update(repeating: 0, count: dx.count) }
            return
        }
        let lanes = Self.blockLanes
        let parts = Self.parts(x.batch), blockCount = Self.blocks(x.batch).count
        let kept = pattern.kept
        // Each block's kept-weight sums go to a row of their own; the rows are then added in
        // block order, so the sums do not depend on which thread ran which block.
        let scratch = Scratch(pattern, inChannels: inChannels, outChannels: outChannels, parts: parts, sums: blockCount * kept,
                              in: workspace)
        let outputArea = pattern.outputHeight * pattern.outputWidth
        let gradientPlane = (pattern.outputHeight + 2 * pattern.gradientHalo) * (pattern.outputWidth + 2 * pattern.gradientHalo)
        let area = pattern.height * pattern.width, classes = stride * stride
        if dx != nil { gatherValues(pattern.columns.weightIndices, into: &backwardValues) }
        let values = backwardValues, partialBase = scratch.sums
        StepProfile.measure(.sparseBackward) {
            Self.forEachBlock(x.batch, parts: parts) { part, index, block in
                let (input, gradient) = scratch.regions(part)
                Self.toBatchInner(x, images: block, into: input, halo: padding)
                Self.toBatchInner(dy, images: block, into: gradient, halo: pattern.gradientHalo)
                let sums = partialBase + index * kept
                Self.forEachGroup(pattern.rows, count: outChannels, positionsPerGroup: outputArea) { o, taps in
                    pattern.outputPositions.sourceBase.withUnsafeBufferPointer { xBase in
                        pattern.outputGradientBase.withUnsafeBufferPointer { dyBase in
                            csparse_dot(sums + taps.first, input, gradient + o * gradientPlane * lanes, xBase.baseAddress,
                                        dyBase.baseAddress, Int32(outputArea), taps.offsets, Int32(taps.count), Int32(lanes))
                        }
                    }
                }
                guard let dx else { return }
                // The padded input is dead now: the input gradient takes its place.
                let inputGradient = input
                // Group `c·classes + r` writes input channel c's positions of class r.
                for r in 0..<classes {
                    Self.gather(pattern.columns, first: r, step: classes, groups: inChannels, at: pattern.classes[r], from: gradient,
                                values: values, into: inputGradient, groupStride: area * lanes)
                }
                Self.fromBatchInner(inputGradient, into: dx, images: block, accumulate: accumulate)
            }
        }
        // Block 0's row takes the others' sums in block order, then goes to the kept weights.
        for index in 1..<Swift.max(1, blockCount) {
            let sums = partialBase + index * kept
            for t in 0..<kept { partialBase[t] += sums[t] }
        }
        weight.gradient.fill(0)
        let target = weight.gradient.pointer
        pattern.rows.weightIndices.withUnsafeBufferPointer { indices in
            for t in 0..<indices.count { target[Int(indices[t])] = partialBase[t] }
        }
    }

    private func gatherValues(_ indices: [Int32], into values: inout [Float]) {
        let w = weight.value.pointer
        indices.withUnsafeBufferPointer { indices in
            values.withUnsafeMutableBufferPointer { values in
                for t in 0..<indices.count { values[t] = w[Int(indices[t])] }
            }
        }
    }

    /// Gathers the groups `first`, `first + step`, … (`groups` of them) of `taps` at `positions`
    /// of `source`, group k's output at `out + k·groupStride`. The positions are shared out over
    /// the threads, each gathering every group at its own: a run of positions' sources then
    /// stays in L1 while all the groups read it. Each output is summed by one thread in tap
    /// order, so the bits do not depend on the thread count.
    static func gather(_ taps: SparsePattern.Taps, first: Int = 0, step: Int = 1, groups: Int, at positions: SparsePattern.Positions,
                       from source: UnsafePointer<Float>, values: [Float], into out: UnsafeMutablePointer<Float>, groupStride: Int) {
        positions.outBase.withUnsafeBufferPointer { outBase in
            positions.sourceBase.withUnsafeBufferPointer { sourceBase in
                taps.bounds.withUnsafeBufferPointer { bounds in
                    taps.offsets.withUnsafeBufferPointer { offsets in
                        values.withUnsafeBufferPointer { values in
                            Parallel.forEachRange(outBase.count) { range in
                                csparse_gather_groups(out, Int64(groupStride), source, outBase.baseAddress, sourceBase.baseAddress,
                                                      Int32(range.lowerBound), Int32(range.upperBound), bounds.baseAddress, Int32(taps.chunks), Int32(first),
                                                      Int32(step), Int32(groups), offsets.baseAddress, values.baseAddress, Int32(blockLanes))
                            }
                        }
                    }
                }
            }
        }
    }

    /// One group's taps as the kernels take them.
    struct GroupTaps {
        /// nil only where the layer keeps no weight (then `count` is 0).
        var offsets: UnsafePointer<Int32>?
        var first: Int
        var count: Int
    }

    /// Calls `body` for each of the first `count` groups of `taps`, the groups cut into one run
    /// per thread of about equal work (taps + 1 per position): the weight gradient's split,
    /// where each group's sums belong to one thread.
    static func forEachGroup(_ taps: SparsePattern.Taps, count: Int, positionsPerGroup: Int, _ body: (Int, GroupTaps) -> Void) {
        var cost = [Int](repeating: 0, count: count + 1)
        for g in 0..<count { cost[g + 1] = cost[g] + (taps.count(g) + 1) * positionsPerGroup }
        let parts = Swift.min(Parallel.threads, count)
        var cuts = [0], g = 0
        for part in 1..<Swift.max(parts, 1) {
            let goal = cost[count] * part / parts
            while g < count && cost[g + 1] <= goal { g += 1 }
            cuts.append(g)
        }
        cuts.append(count)
        taps.offsets.withUnsafeBufferPointer { offsets in
            Parallel.forEachRange(cuts.count - 1) { range in
                for part in range {
                    for g in cuts[part]..<cuts[part + 1] {
                        let first = taps.start[g]
                        body(g, GroupTaps(offsets: offsets.baseAddress.map { $0 + first }, first: first, count: taps.count(g)))
                    }
                }
            }
        }
    }

    /// Images `images` of `x` (`[C][N][H][W]`) into `[C][H+2·halo][W+2·halo][blockLanes]`,
    /// zero in the halo and spare lanes.
    static func toBatchInner(_ x: FeatureMap, images: (first: Int, count: Int), into target: UnsafeMutablePointer<Float>, halo: Int) {
        let source = x.data + images.first * x.height * x.width
        Parallel.forEachRange(x.channels) { channels in
            csparse_to_batch_inner(target, source, Int32(channels.lowerBound), Int32(channels.upperBound), Int32(images.count),
                                   Int32(x.batch), Int32(x.height), Int32(x.width), Int32(halo), Int32(blockLanes))
        }
    }

    /// `[C][H][W][blockLanes]` back into images `images` of `y` (`[C][N][H][W]`), written or added.
    static func fromBatchInner(_ source: UnsafeMutablePointer<Float>, into y: FeatureMap, images: (first: Int, count: Int),
                               accumulate: Bool) {
        let target = y.data + images.first * y.height * y.width
        Parallel.forEachRange(y.channels) { channels in
            csparse_from_batch_inner(target, source, Int32(channels.lowerBound), Int32(channels.upperBound), Int32(images.count),
                                     Int32(y.batch), Int32(y.height), Int32(y.width), Int32(blockLanes), accumulate ? 1 : 0)
        }
    }
}
