import Crypto
import Foundation

/// The three steps a sweep schedules, as pure functions from files to files. Each input and
/// output is a safetensors (or JSON) file, and a step's identity is the hash of its
/// specification and of its inputs' contents, so the same step on the same inputs is the
/// same task wherever it runs.
public enum Steps {
    /// The SHA-256 of a file's bytes, in hex: an artifact's content address.
    public static func contentHash(of url: URL) throws(ModelError) -> String {
        do { return hex(SHA256.hash(data: try Data(contentsOf: url, options: .mappedIfSafe))) } catch {
            throw .io("cannot read \(url.path) to hash it: \(error.localizedDescription)")
        }
    }

    /// The identity of a step: the hash of its name, its specification's canonical JSON and
    /// its inputs' content hashes (in order).
    public static func identity<Spec: Encodable>(step: String, spec: Spec, inputs: [String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data(step.utf8)
        data.append((try? encoder.encode(spec)) ?? Data())
        for input in inputs { data.append(Data(input.utf8)) }
        return hex(SHA256.hash(data: data))
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.hexDigits
    }

    /// `prune(method, weights, old mask, [data]) → new mask, report`: loads the weights (and the
    /// old mask, if any) into a network of `architecture`, prunes, and writes the mask file
    /// (`mask.NAME` tensors, accounting in the metadata) and returns the report.
    public static func prune(method: PruningMethod, architecture: ResNet18.Architecture, inputSide: Int,
                             weights: URL, oldMask: URL?, data: ImageDataset?, seed: UInt64,
                             output: URL, log: (String) -> Void = { _ in }) throws(ModelError) -> PruningReport {
        let network = ResNet18(architecture)
        try network.loadState(from: try Safetensors(contentsOf: weights), source: weights.path)
        if let oldMask {
            try MaskSet(from: try Safetensors(contentsOf: oldMask), for: network, source: oldMask.path).apply(to: network)
        }
        let masks = try method.prune(network, inputSide: inputSide, data: data, seed: seed, log: log)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let methodJSON = (try? encoder.encode(method)).map { String(decoding: $0, as: UTF8.self) } ?? method.name
        try masks.safetensors(metadata: ["method": methodJSON]).write(to: output)
        return masks.report
    }

    /// `rewind(θ, mask) → weights`: the weights (and BatchNorm buffers) of `source` — θ0 or a
    /// late-rewinding θK — with `mask` applied at once and stored beside them.
    public static func rewind(architecture: ResNet18.Architecture, source: URL, mask: URL, output: URL) throws(ModelError) {
        let network = ResNet18(architecture)
        try network.loadState(from: try Safetensors(contentsOf: source), source: source.path)
        let masks = try MaskSet(from: try Safetensors(contentsOf: mask), for: network, source: mask.path)
        try masks.apply(to: network)
        var file = Safetensors(metadata: ["density": String(masks.density), "sparsity": String(masks.sparsity)])
        network.addState(to: &file)
        for parameter in network.prunableParameters { if let m = parameter.mask { file.add("mask." + parameter.name, m) } }
        try file.write(to: output)
    }

    /// The initial weights of a run seed (θ0), as a weights file.
    public static func initialWeights(architecture: ResNet18.Architecture, seed: UInt64, output: URL) throws(ModelError) {
        let network = ResNet18(architecture)
        network.initialise(seed: seed)
        var file = Safetensors(metadata: ["seed": String(seed)])
        network.addState(to: &file)
        try file.write(to: output)
    }
}
