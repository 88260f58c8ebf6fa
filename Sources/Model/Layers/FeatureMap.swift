/// A view of a batch of feature maps in channel-major (CNHW) layout.
///
/// The public tensors of the model are NCHW as in PyTorch, but activations inside the
/// network are stored as `[channel][image][row][column]`: every convolution over the whole
/// batch then becomes a single GEMM (`W[out, in·k·k] × col[in·k·k, N·H·W]`), and each
/// BatchNorm channel is one contiguous row. The view does not own its memory; the layer
/// that produced it does, until that layer's next forward pass.
public struct FeatureMap {
    /// The first element.
    public var data: UnsafeMutablePointer<Float>
    /// Channels (C), images (N), rows (H) and columns (W).
    public let channels: Int, batch: Int, height: Int, width: Int

    /// A view over `data` with the given extents.
    public init(data: UnsafeMutablePointer<Float>, channels: Int, batch: Int, height: Int, width: Int) {
        self.data = data
        self.channels = channels
        self.batch = batch
        self.height = height
        self.width = width
    }

    /// Elements per channel: N·H·W.
    public var plane: Int { batch * height * width }
    /// All elements: C·N·H·W.
    public var count: Int { channels * plane }

    /// A view of the same extents over other memory (an output or gradient buffer).
    public func sameShape(at data: UnsafeMutablePointer<Float>) -> FeatureMap {
        FeatureMap(data: data, channels: channels, batch: batch, height: height, width: width)
    }
}
