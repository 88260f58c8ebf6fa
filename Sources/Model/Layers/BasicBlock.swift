/// The CIFAR ResNet's residual block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`,
/// where the shortcut is the identity or, when the stride or width changes, a 1×1
/// convolution followed by BatchNorm (`shortcut.0`, `shortcut.1` in PyTorch's names).
///
/// bn2 adds the shortcut and rectifies in its own pass, so the block's output is bn2's output
/// buffer (nothing reads bn2's plain output afterwards), and its
/// backward pass works in two gradient buffers that the network lends it, so it holds no
/// gradient memory between steps.
public final class BasicBlock {
    /// The block's layers, in PyTorch `state_dict` order.
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    /// The projection shortcut, when the block changes stride or width.
    public let shortcut: (conv: Conv2d, bn: BatchNorm2d)?
    private var savedOutput: FeatureMap?

    /// A block named `prefix` (e.g. `layer2.0`) from `inPlanes` to `planes` channels.
    /// `columns` holds the convolutions' column-matrix chunks (see `Conv2d.init`).
    public init(name prefix: String, inPlanes: Int, planes: Int, stride: Int, columns: Workspace = Workspace()) {
        conv1 = Conv2d(name: prefix + ".conv1.weight", inChannels: inPlanes, outChannels: planes, kernel: 3, stride: stride, padding: 1,
                       columns: columns)
        bn1 = BatchNorm2d(name: prefix + ".bn1", channels: planes, appliesReLU: true)
        conv2 = Conv2d(name: prefix + ".conv2.weight", inChannels: planes, outChannels: planes, kernel: 3, stride: 1, padding: 1,
                       columns: columns)
        bn2 = BatchNorm2d(name: prefix + ".bn2", channels: planes, appliesReLU: false)
        if stride != 1 || inPlanes != planes {
            shortcut = (
                Conv2d(name: prefix + ".shortcut.0.weight", inChannels: inPlanes, outChannels: planes, kernel: 1, stride: stride,
                       columns: columns),
                BatchNorm2d(name: prefix + ".shortcut.1", channels: planes, appliesReLU: false))
        } else {
            shortcut = nil
        }
    }

    /// The convolutions in `state_dict` order.
    public var convolutions: [Conv2d] { [conv1, conv2] + (shortcut.map { [$0.conv] } ?? []) }
    /// The BatchNorms in `state_dict` order.
    public var batchNorms: [BatchNorm2d] { [bn1, bn2] + (shortcut.map { [$0.bn] } ?? []) }

    /// Runs the block on `x`.
    public func forward(_ x: FeatureMap, training: Bool) -> FeatureMap {
        let a = conv1.forward(x, normalisedBy: bn1, training: training)
        let skip = shortcut.map { $0.conv.forward(x, normalisedBy: $0.bn, training: training) } ?? x
        let y = conv2.forward(a, normalisedBy: bn2, training: training, residual: skip)
        savedOutput = y
        return y
    }

    /// Back-propagates `∂L/∂out` through both paths and returns `∂L/∂x`, stored in `output`;
    /// `temporary` holds the gradients in between. Neither may be the memory `dy` is in.
    public func backward(_ dy: FeatureMap, temporary: Workspace, output: Workspace) -> FeatureMap {
        guard let y = savedOutput else { preconditionFailure("BasicBlock: backward before forward") }
        // The final ReLU's mask is applied inside the BatchNorms' backward passes (and in the
        // identity-shortcut sum below) instead of in a pass of its own.
        let gate = UnsafePointer(y.data)
        let da = conv2.backward(bn2.backward(dy, gatedBy: gate, into: temporary), into: output)
        // `da` is dead once bn1 has read it, so conv1 writes `∂L/∂x` over it.
        let d1 = bn1.backward(da, into: temporary)
        guard let shortcut else { return conv1.backward(d1, into: output, addingGated: dy.data, gate: gate) }
        let dx = conv1.backward(d1, into: output)
        shortcut.conv.backward(shortcut.bn.backward(dy, gatedBy: gate, into: temporary), addingTo: dx)
        return dx
    }
}
