import Foundation

/// A {0,1} mask for every prunable tensor of a network, by PyTorch parameter name, with the
/// accounting the study got wrong made explicit: `density` is the fraction of prunable weights
/// kept, `sparsity` the fraction removed, both over the prunable tensors only.
public struct MaskSet: Sendable, Equatable {
    /// The tensor names in `state_dict` order.
    public var names: [String]
    /// The masks' values by name (1 keeps a weight, 0 prunes it).
    public var values: [String: [Float]]
    /// The tensor shapes by name.
    public var shapes: [String: [Int]]

    /// All-ones masks for `network`'s prunable tensors.
    public init(onesFor network: ResNet18) { self.init(onesFor: ResNet18.Layout(network.architecture)) }

    /// All-ones masks for the prunable tensors of a network laid out as `layout`.
    public init(onesFor layout: ResNet18.Layout) {
        names = layout.prunable.map(\.name)
        values = [:]
        shapes = [:]
        for entry in layout.prunable {
            values[entry.name] = [Float](repeating: 1, count: entry.shape.reduce(1, *))
            shapes[entry.name] = entry.shape
        }
    }

    /// The masks `network` carries now (all ones where a tensor has none).
    public init(of network: ResNet18) {
        self.init(onesFor: network)
        for parameter in network.prunableParameters { if let mask = parameter.mask { values[parameter.name] = mask.array } }
    }

    /// Reads masks stored as `mask.NAME` (the layout of weight files and checkpoints) or as
    /// plain `NAME` tensors, for every prunable tensor of `network`.
    public init(from file: Safetensors, for network: ResNet18, source: String) throws(ModelError) {
        try self.init(from: file, layout: ResNet18.Layout(network.architecture), source: source)
    }

    /// Reads masks as `init(from:for:source:)` does, for a network laid out as `layout`
    /// (without building it).
    public init(from file: Safetensors, layout: ResNet18.Layout, source: String) throws(ModelError) {
        names = layout.prunable.map(\.name)
        shapes = Dictionary(uniqueKeysWithValues: layout.prunable.map { ($0.name, $0.shape) })
        values = [:]
        for layer in layout.prunable {
            let name = layer.name
            let entry = try Self.entry(for: layer, in: file, source: source)
            // Read straight from the file's bytes (one copy; a width-64 mask is 11 M floats).
            let mask = entry.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            if let bad = mask.first(where: { $0 != 0 && $0 != 1 }) {
                throw .invalidCheckpoint("\(source): mask \(name) holds \(bad); masks hold only 0 and 1")
            }
            values[name] = mask
        }
    }

    /// The mask entry of `layer` in `file` (`mask.NAME`, or `NAME` in a mask file), checked to
    /// be `F32` of the layer's shape; `source` names the file in errors. Its values are the
    /// caller's to check (0 and 1 only).
    public static func entry(for layer: ResNet18.Layout.Entry, in file: Safetensors, source: String) throws(ModelError)
        -> Safetensors.Entry {
        let name = layer.name
        let key = file.entries["mask." + name] != nil ? "mask." + name : name
        guard let entry = file.entries[key] else { throw .invalidCheckpoint("\(source) has no mask for \(name)") }
        guard entry.dtype == "F32" else { throw .invalidCheckpoint("\(key) is \(entry.dtype), expected F32") }
        guard entry.shape == layer.shape else {
            throw .invalidCheckpoint("\(source): mask \(name) has shape \(entry.shape), the network needs \(layer.shape)")
        }
        return entry
    }

    /// Installs the masks on `network` (zeroing pruned weights and their momentum).
    public func apply(to network: ResNet18) throws(ModelError) {
        for parameter in network.prunableParameters {
            guard let mask = values[parameter.name], let shape = shapes[parameter.name] else { continue }
            try parameter.setMask(Tensor(shape: shape, values: mask))
        }
    }

    /// The masks as tensors by name (the form `Trainer` takes).
    public var tensors: [String: Tensor] {
        var result: [String: Tensor] = [:]
        for name in names {
            if let mask = values[name], let shape = shapes[name] { result[name] = Tensor(shape: shape, values: mask) }
        }
        return result
    }

    /// Weights kept, over all prunable tensors.
    public var kept: Int { values.values.reduce(0) { $0 + $1.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } } }
    /// Prunable weights in all.
    public var total: Int { values.values.reduce(0) { $0 + $1.count } }
    /// Fraction of prunable weights kept.
    public var density: Double { Double(kept) / Double(Swift.max(total, 1)) }
    /// Fraction of prunable weights removed: 1 − density.
    public var sparsity: Double { 1 - density }

    /// Kept fraction per tensor, by name.
    public var layerDensities: [String: Double] {
        values.mapValues { mask in Double(mask.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }) / Double(Swift.max(mask.count, 1)) }
    }

    /// The masks as a safetensors file with `mask.NAME` tensors and the accounting in its metadata.
    public func safetensors(metadata: [String: String] = [:]) -> Safetensors {
        var file = Safetensors(metadata: metadata.merging([
            "density": String(density), "sparsity": String(sparsity),
            "kept": String(kept), "total_prunable": String(total),
        ]) { $1 })
        for name in names {
            if let mask = values[name], let shape = shapes[name] { file.add("mask." + name, Tensor(shape: shape, values: mask)) }
        }
        return file
    }

    /// The JSON-friendly summary of a pruning step's result.
    public var report: PruningReport {
        PruningReport(density: density, sparsity: sparsity, remaining: kept, prunable: total, layerDensities: layerDensities)
    }
}

/// What a prune step reports: explicit density and sparsity, counts and per-layer densities.
public struct PruningReport: Codable, Sendable, Equatable {
    /// Fraction of prunable weights kept.
    public var density: Double
    /// Fraction of prunable weights removed.
    public var sparsity: Double
    /// Prunable weights kept, and prunable weights in all.
    public var remaining: Int, prunable: Int
    /// Kept fraction per tensor.
    public var layerDensities: [String: Double]
}
