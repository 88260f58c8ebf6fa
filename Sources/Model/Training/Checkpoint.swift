import Foundation

/// A whole training state in one safetensors file: the network (PyTorch names), momentum
/// buffers (`momentum.NAME`), masks (`mask.NAME`), and in the metadata the progress (epoch,
/// random streams, metrics) and a SHA-256 checksum of the tensors, verified on load.
public enum Checkpoint {
    /// The format tag stored in the metadata.
    public static let format = "prunesweep-checkpoint-1"

    /// Writes the state atomically to `url`.
    public static func save(_ network: ResNet18, progress: TrainingProgress, config: TrainingConfig, to url: URL) throws(ModelError) {
        // Views of the network's tensors, not copies: the file is written before `save` returns.
        var file = Safetensors()
        for (name, tensor) in network.state { file.addView(name, tensor) }
        for parameter in network.parameters { file.addView("momentum." + parameter.name, parameter.momentum) }
        for parameter in network.parameters { if let mask = parameter.mask { file.addView("mask." + parameter.name, mask) } }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let progressJSON = (try? encoder.encode(progress)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
        file.metadata = [
            "format": format,
            "progress": progressJSON,
            "config": String(decoding: config.canonicalJSON, as: UTF8.self),
            "checksum": file.contentDigest,
        ]
        try file.write(to: url)
    }

    /// Reads `url` into `network` (weights, buffers, momentum, masks) after checking the
    /// checksum, and returns the progress. The network is untouched if anything is wrong.
    public static func load(_ url: URL, into network: ResNet18) throws(ModelError) -> TrainingProgress {
        let file = try Safetensors(contentsOf: url)
        guard file.metadata["format"] == format else {
            throw .invalidCheckpoint("\(url.path) is not a PruneSweep checkpoint (format \(file.metadata["format"] ?? "missing"), expected \(format))")
        }
        guard let checksum = file.metadata["checksum"], checksum == file.contentDigest else {
            throw .invalidCheckpoint("\(url.path) fails its checksum (the file is corrupt); delete it to restart the run from scratch")
        }
        guard let data = file.metadata["progress"]?.data(using: .utf8),
              let progress = try? JSONDecoder().decode(TrainingProgress.self, from: data) else {
            throw .invalidCheckpoint("\(url.path) has no readable progress record")
        }
        var momenta: [Tensor] = []
        for parameter in network.parameters {
            let momentum = try file.tensor("momentum." + parameter.name)
            guard momentum.shape == parameter.shape else { throw .invalidCheckpoint("\(url.path): momentum.\(parameter.name) has shape \(momentum.shape)") }
            momenta.append(momentum)
        }
        try network.loadState(from: file, source: url.path)
        for (parameter, momentum) in zip(network.parameters, momenta) {
            parameter.momentum.copy(from: momentum)
            try parameter.setMask(file.entries["mask." + parameter.name] == nil ? nil : try file.tensor("mask." + parameter.name))
        }
        return progress
    }
}
