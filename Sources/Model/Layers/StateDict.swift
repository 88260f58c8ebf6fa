/// Moving a network's state (parameters and BatchNorm buffers, PyTorch names) to and from
/// safetensors, so a model trained in PyTorch can be pruned here and the reverse.
extension ResNet18 {
    /// Copies every parameter and buffer from `file`, reading the tensor `prefix + name`.
    /// Every tensor must be present with the right shape; nothing is changed otherwise.
    public func loadState(from file: Safetensors, prefix: String = "", source: String) throws(ModelError) {
        try Layout(architecture).check(file, prefix: prefix, source: source)
        var loaded: [(Tensor, Tensor)] = []
        for (name, tensor) in state { loaded.append((tensor, try file.tensor(prefix + name))) }
        for (target, source) in loaded { target.copy(from: source) }
        for parameter in parameters { parameter.applyMask() }
    }

    /// Adds every parameter and buffer to `file` under `prefix + name`.
    public func addState(to file: inout Safetensors, prefix: String = "") {
        for (name, tensor) in state { file.add(prefix + name, tensor) }
    }
}

extension FeatureMap {
    /// Copies an NCHW batch into channel-major layout in `workspace`.
    public static func channelMajor(fromNCHW source: UnsafePointer<Float>, batch: Int, channels: Int, height: Int, width: Int, into workspace: Workspace) -> FeatureMap {
        let area = height * width
        let map = FeatureMap(data: workspace.reserve(batch * channels * area), channels: channels, batch: batch, height: height, width: width)
        for image in 0..<batch {
            for c in 0..<channels {
                (map.data + (c * batch + image) * area).update(from: source + (image * channels + c) * area, count: area)
            }
        }
        return map
    }

    /// The map's elements in NCHW order (logits come out as `[N, classes]`).
    public var nchwArray: [Float] {
        let area = height * width
        var result = [Float](repeating: 0, count: count)
        for image in 0..<batch {
            for c in 0..<channels {
                for i in 0..<area { result[(image * channels + c) * area + i] = data[(c * batch + image) * area + i] }
            }
        }
        return result
    }
}
