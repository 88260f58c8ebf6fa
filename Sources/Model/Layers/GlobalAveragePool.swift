/// The mean over each feature map's rows and columns: `[C, N, H, W] → [C, N, 1, 1]`
/// (PyTorch's `avg_pool2d(out, 4)` on the ResNet's final 4×4 maps).
public final class GlobalAveragePool {
    private let output = Workspace()
    private let inputGradient = Workspace()
    private var inputShape: FeatureMap?

    /// A pooling layer (it has no parameters).
    public init() {}

    /// Averages each `H×W` map.
    public func forward(_ x: FeatureMap) -> FeatureMap {
        inputShape = x
        let area = x.height * x.width
        let y = FeatureMap(data: output.reserve(x.channels * x.batch), channels: x.channels, batch: x.batch, height: 1, width: 1)
        for map in 0..<(x.channels * x.batch) {
            y.data[map] = Float(sum(x.data + map * area, count: area) / Double(area))
        }
        return y
    }

    /// Spreads each map's gradient evenly over its `H×W` positions.
    public func backward(_ dy: FeatureMap) -> FeatureMap {
        guard let x = inputShape else { preconditionFailure("GlobalAveragePool: backward before forward") }
        let area = x.height * x.width
        let dx = x.sameShape(at: inputGradient.reserve(x.count))
        for map in 0..<(x.channels * x.batch) {
            (dx.data + map * area).update(repeating: dy.data[map] / Float(area), count: area)
        }
        return dx
    }
}
