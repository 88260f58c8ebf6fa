/// Where a masked convolution's kept weights read and write, for one input size: the sparse
/// engine's weight layout.
///
/// The kernels work on "batch-inner" activations, `[channel][row][column][lane]` with the batch
/// in the lanes (16 images at a time, see `SparseConvolution`), so every kept weight touches one contiguous
/// run of lanes at each position and no tap needs a bounds check: the input carries a zero
/// halo of `padding` positions, the output gradient one wide enough for the taps of the input
/// gradient. Each kept weight becomes one precomputed position offset, grouped in CSR form:
///
/// - forward and weight gradient: by output channel, the taps `(c, ki, kj)` of its row, read
///   from the padded input at `position base + offset`;
/// - input gradient: by input channel and by the class of input positions a stride reaches
///   (`(y + padding) mod stride`, the same across), the taps read from the padded output
///   gradient — the transposed convolution as a gather, so each input-gradient value has one
///   writer and nothing is scattered.
public struct SparsePattern: Sendable {
    /// The convolution's geometry and the input extents the offsets were computed for.
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int, height: Int, width: Int
    /// Output extents.
    public let outputHeight: Int, outputWidth: Int

    /// Groups of taps in CSR form: group `g` is `start[g]..<start[g + 1]`.
    public struct Taps: Sendable {
        /// Where each group begins, and the end of the last.
        public var start: [Int] = [0]
        /// Indices into the weight tensor `[out, in, k, k]`, in the order the kernels sum.
        public var weightIndices: [Int32] = []
        /// Offsets, in positions, from a position's base to the position the tap reads.
        public var offsets: [Int32] = []

        mutating func append(index: Int, offset: Int) {
            weightIndices.append(Int32(index))
            offsets.append(Int32(offset))
        }

        mutating func closeGroup() { start.append(offsets.count) }

        /// Taps in group `g`.
        public func count(_ g: Int) -> Int { start[g + 1] - start[g] }

        /// Runs of channels each group's taps are cut into for the gather (see `divide`).
        public private(set) var chunks = 1
        /// Group `g`'s chunk `j` is `bounds[g·(chunks + 1) + j]..<bounds[g·(chunks + 1) + j + 1]`.
        public private(set) var bounds: [Int] = []

        /// Cuts every group's taps where the channel they read (`channel(index)`, ascending
        /// within a group) crosses a multiple of `channelsPerChunk`: the gather then works
        /// through the first chunk of every group before the next, so that the sources it
        /// reads between two passes over the groups (a run of positions' taps in
        /// `channelsPerChunk` channels) fit in L1 rather than in L2.
        mutating func divide(channels: Int, channelsPerChunk: Int, channel: (Int) -> Int) {
            chunks = (channels + channelsPerChunk - 1) / channelsPerChunk
            bounds = []
            bounds.reserveCapacity((start.count - 1) * (chunks + 1))
            for g in 0..<(start.count - 1) {
                var t = start[g]
                bounds.append(t)
                for j in 1..<chunks {
                    while t < start[g + 1] && channel(Int(weightIndices[t])) < j * channelsPerChunk { t += 1 }
                    bounds.append(t)
                }
                bounds.append(start[g + 1])
            }
        }
    }

    /// A set of positions a group of taps runs over: where each writes and where it reads.
    public struct Positions: Sendable {
        /// Base of each position in the buffer written (forward: the compact output; input
        /// gradient: the compact input gradient) and in the buffer read.
        public var outBase: [Int32] = [], sourceBase: [Int32] = []
    }

    /// Forward taps, one group per output channel (CSR rows in weight order).
    public let rows: Taps
    /// The output positions: compact output base and padded input base.
    public let outputPositions: Positions
    /// The padded output gradient's base of each output position (weight gradient).
    public let outputGradientBase: [Int32]
    /// Input-gradient taps, one group per input channel and position class (`c·stride² + class`).
    public let columns: Taps
    /// The input positions of each class: compact input-gradient base and padded output-gradient base.
    public let classes: [Positions]
    /// The padded output gradient's halo, the same on every side (the widest any side needs).
    public let gradientHalo: Int
    /// Kept weights.
    public let kept: Int

    /// The layout of `mask` (`[out, in, k, k]`, entries 0 or 1) for an `height`×`width` input.
    public init(mask: UnsafePointer<Float>, inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int,
                height: Int, width: Int) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.height = height
        self.width = width
        let k = kernel, s = stride, p = padding
        outputHeight = (height + 2 * p - k) / s + 1
        outputWidth = (width + 2 * p - k) / s + 1
        let paddedHeight = height + 2 * p, paddedWidth = width + 2 * p

        var rows = Taps()
        for o in 0..<outChannels {
            for c in 0..<inChannels {
                for ki in 0..<k {
                    for kj in 0..<k {
                        let index = ((o * inChannels + c) * k + ki) * k + kj
                        guard mask[index] != 0 else { continue }
                        rows.append(index: index, offset: (c * paddedHeight + ki) * paddedWidth + kj)
                    }
                }
            }
            rows.closeGroup()
        }
        rows.divide(channels: inChannels, channelsPerChunk: Self.channelsPerChunk) { ($0 / (k * k)) % inChannels }
        self.rows = rows
        kept = rows.offsets.count

        var forward = Positions()
        for oy in 0..<outputHeight {
            for ox in 0..<outputWidth {
                forward.outBase.append(Int32(oy * outputWidth + ox))
                forward.sourceBase.append(Int32(oy * s * paddedWidth + ox * s))
            }
        }
        outputPositions = forward

        // The output rows an input row's taps reach, `(y + p − ki) / s` where that divides,
        // fix how much halo the output gradient needs on each side.
        func halo(_ extent: Int, _ outputExtent: Int) -> (low: Int, high: Int) {
            var low = 0, high = 0
            for y in 0..<extent {
                for ki in 0..<k where (y + p - ki) % s == 0 {
                    let q = (y + p - ki) / s
                    low = Swift.max(low, -q)
                    high = Swift.max(high, q - (outputExtent - 1))
                }
            }
            return (low, high)
        }
        let vertical = halo(height, outputHeight), horizontal = halo(width, outputWidth)
        let h = Swift.max(vertical.low, vertical.high, horizontal.low, horizontal.high)
        gradientHalo = h
        let gradientHeight = outputHeight + 2 * h, gradientWidth = outputWidth + 2 * h
        var gradientBase: [Int32] = []
        for oy in 0..<outputHeight {
            for ox in 0..<outputWidth { gradientBase.append(Int32((oy + h) * gradientWidth + ox + h)) }
        }
        outputGradientBase = gradientBase

        // Class (ry, rx) holds the input positions with (y + p) mod s = ry, (x + p) mod s = rx;
        // the taps reaching them are those with ki ≡ ry, kj ≡ rx (mod s).
        var classes: [Positions] = []
        for ry in 0..<s {
            for rx in 0..<s {
                var positions = Positions()
                for y in 0..<height where (y + p) % s == ry {
                    for x in 0..<width where (x + p) % s == rx {
                        let qy = (y + p - ry) / s + h, qx = (x + p - rx) / s + h
                        positions.outBase.append(Int32(y * width + x))
                        positions.sourceBase.append(Int32(qy * gradientWidth + qx))
                    }
                }
                classes.append(positions)
            }
        }
        self.classes = classes
        var columns = Taps()
        for c in 0..<inChannels {
            for r in 0..<(s * s) {
                for o in 0..<outChannels {
                    for ki in 0..<k where ki % s == r / s {
                        for kj in 0..<k where kj % s == r % s {
                            let index = ((o * inChannels + c) * k + ki) * k + kj
                            guard mask[index] != 0 else { continue }
                            columns.append(index: index, offset: (o * gradientHeight - ki / s) * gradientWidth - kj / s)
                        }
                    }
                }
                columns.closeGroup()
            }
        }
        columns.divide(channels: outChannels, channelsPerChunk: Self.channelsPerChunk) { $0 / (inChannels * k * k) }
        self.columns = columns
    }

    /// Channels per chunk of the gather's taps (`Taps.divide`): a run of eight positions reads
    /// about 2 KB per channel (3 rows of 10 positions, 64 bytes each), so 16 channels' sources
    /// are about an L1 (32 KB on the AMD EPYC measured). On a masked width-64 epoch (SynFlow
    /// 5%, 1 thread) 16 channels took 10% fewer samples in the gather than no cut; 8 the same
    /// as 16, 32 no gain.
    static let channelsPerChunk = 16

    /// Positions of the padded input (per channel, all channels).
    public var paddedInputPositions: Int { inChannels * (height + 2 * padding) * (width + 2 * padding) }
    /// Positions of the padded output gradient (all channels).
    public var paddedGradientPositions: Int {
        outChannels * (outputHeight + 2 * gradientHalo) * (outputWidth + 2 * gradientHalo)
    }
}
