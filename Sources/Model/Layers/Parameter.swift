/// A trainable tensor with its gradient, its SGD momentum buffer and an optional pruning mask.
public final class Parameter {
    /// The PyTorch `state_dict` name, e.g. `layer2.0.shortcut.0.weight`.
    public let name: String
    /// The layer a weight belongs to: its name without `.weight`, e.g. `layer2.0.shortcut.0`.
    public var layerName: String { String(name.dropLast(".weight".count)) }
    /// The current value.
    public let value: Tensor
    /// The gradient of the last backward pass (overwritten, not accumulated).
    public let gradient: Tensor
    /// The SGD momentum buffer.
    public let momentum: Tensor
    /// Whether pruning may mask this tensor (conv and linear weights; never biases or BN).
    public let prunable: Bool
    /// The {0,1} mask, present once the tensor has been pruned or a mask was loaded.
    public private(set) var mask: Tensor?

    /// A zero-initialised parameter of the given shape.
    public init(name: String, shape: [Int], prunable: Bool) {
        self.name = name
        self.value = Tensor(shape: shape)
        self.gradient = Tensor(shape: shape)
        self.momentum = Tensor(shape: shape)
        self.prunable = prunable
    }

    /// The shape of the value.
    public var shape: [Int] { value.shape }

    /// Installs `mask` (same shape, entries 0 or 1) and zeroes the masked weights and momentum
    /// at once, so a freshly loaded or rewound network never runs a step unmasked.
    public func setMask(_ mask: Tensor?) throws(ModelError) {
        guard let mask else {
            self.mask = nil
            return
        }
        guard prunable else { throw .invalidConfiguration("\(name) is not prunable; only conv and linear weights take masks") }
        guard mask.shape == shape else {
            throw .invalidConfiguration("mask for \(name) has shape \(mask.shape), the parameter has \(shape)")
        }
        for i in 0..<mask.count where mask[i] != 0 && mask[i] != 1 {
            throw .invalidConfiguration("mask for \(name) has value \(mask[i]) at index \(i); masks hold only 0 and 1")
        }
        self.mask = mask.clone()
        applyMask()
    }

    /// `w ← w ⊙ m` and `momentum ← momentum ⊙ m`; a no-op without a mask.
    public func applyMask() {
        guard let mask else { return }
        let m = mask.pointer, w = value.pointer, v = momentum.pointer
        for i in 0..<value.count {
            w[i] *= m[i]
            v[i] *= m[i]
        }
    }

    /// How many weights the mask keeps (all of them without a mask).
    public var keptCount: Int {
        guard let mask else { return value.count }
        var kept = 0
        for i in 0..<mask.count where mask[i] != 0 { kept += 1 }
        return kept
    }

    /// The share of the weights the mask keeps (1 without a mask).
    public var density: Double { Double(keptCount) / Double(value.count) }
}
