import Foundation
import Model
import TaskRuntime

extension TaskSpec.Step {
    /// The output roles the step produces, exactly: a result with any other set is refused.
    public var outputRoles: Set<String> {
        switch self {
        case .initialise: ["weights"]
        case .train: ["weights", "metrics"]
        case .prune: ["mask", "report"]
        }
    }

    /// The network the step's weights and masks belong to (checked against its `Layout`,
    /// never built: a width-64 ResNet18 allocates three copies of 11 M parameters).
    var architecture: ResNet18.Architecture {
        switch self {
        case .initialise(let architecture, _): architecture
        case .train(let config), .prune(_, let config):
            ResNet18.Architecture(width: config.width, inputChannels: config.inputShape.channels, classes: 10)
        }
    }
}

extension TaskSpec {
    /// What a passed check read that its caller needs again: the run summary of a training
    /// (the results line is made from it) and the counts of every mask it counted, by hash.
    public struct CheckedOutputs: Sendable {
        /// A training's metrics, decoded (nil for other steps).
        public var summary: RunSummary?
        /// Masks read and counted by the check (a prune's output, a training's input mask),
        /// by artifact hash: the kept weights of each.
        public var maskKept: [String: Int] = [:]
    }

    /// Checks a step's outputs (role → artifact hash in `store`) before they are accepted:
    /// exactly `step.outputRoles`, each intact, weights and masks that load into a network of
    /// the task's architecture, metrics and reports that decode, and a density that matches
    /// the task's (its input mask's for a training, its method's target for a preset prune).
    /// `inputs` are the task's input artifacts by role; `inputMaskKept` is the kept count of
    /// the input mask when an earlier check of the same bytes (the same hash, for the same
    /// architecture) counted it, so the mask is not read and counted again. The error says
    /// which output is wrong.
    @discardableResult
    public func checkOutputs(_ outputs: [String: String], inputs: [String: String], store: ArtifactStore,
                             inputMaskKept: Int? = nil) throws(SweepError) -> CheckedOutputs {
        let roles = Set(outputs.keys)
        guard roles == step.outputRoles else {
            throw .invalid("the outputs of \(summary) have roles \(roles.sorted()), the step produces \(step.outputRoles.sorted())")
        }
        let layout = ResNet18.Layout(step.architecture)
        var checked = CheckedOutputs()
        func read(_ role: String, of hashes: [String: String]) throws(SweepError) -> Data {
            let hash = hashes[role] ?? ""
            do { return try store.data(hash) } catch {
                throw .invalid("\(role) \(hash.prefix(12)) of \(summary) did not arrive intact: \(error)")
            }
        }
        func load<T>(_ role: String, of hashes: [String: String], _ make: (Data) throws -> T) throws(SweepError) -> T {
            let data = try read(role, of: hashes)
            do { return try make(data) } catch {
                throw .invalid("the \(role) output of \(summary) is not a valid \(role) for this task: \(error)")
            }
        }
        func loadWeights() throws(SweepError) {
            try load("weights", of: outputs) { try layout.check(Safetensors(data: $0, source: "weights"), source: "weights") }
        }
        func countMask(_ hashes: [String: String]) throws(SweepError) -> MaskCount {
            let count = try load("mask", of: hashes) { try MaskCount(Safetensors(data: $0, source: "mask"), layout: layout, source: "mask") }
            if let hash = hashes["mask"] { checked.maskKept[hash] = count.kept }
            return count
        }
        switch step {
        case .initialise:
            try loadWeights()
        case .train:
            try loadWeights()
            let metrics = try load("metrics", of: outputs) { try JSONDecoder().decode(RunSummary.self, from: $0) }
            // A dense run keeps every weight; a masked one exactly what its input mask keeps.
            let prunable = layout.prunable.reduce(0) { $0 + $1.shape.reduce(1, *) }
            var kept = prunable
            if let known = inputMaskKept, inputs["mask"] != nil {
                kept = known
            } else if inputs["mask"] != nil {
                kept = try countMask(inputs).kept
            }
            guard metrics.remaining == kept && metrics.prunable == prunable else {
                throw .invalid("the metrics of \(summary) report \(metrics.remaining) of \(metrics.prunable) prunable weights kept, the task's mask keeps \(kept) of \(prunable)")
            }
            checked.summary = metrics
        case .prune(let method, _):
            let mask = try countMask(outputs)
            let report = try load("report", of: outputs) { try JSONDecoder().decode(PruningReport.self, from: $0) }
            guard report.remaining == mask.kept && report.prunable == mask.total else {
                throw .invalid("the report of \(summary) says \(report.remaining) of \(report.prunable) weights kept, its mask keeps \(mask.kept) of \(mask.total)")
            }
            // Single-shot methods land on their target up to rounding per tensor.
            if let target = method.targetDensity, abs(mask.density - target) > 0.01 {
                throw .invalid("the mask of \(summary) keeps \(mask.density) of the weights, the method aims at \(target)")
            }
        }
        return checked
    }
}

extension PruningMethod {
    /// The density a single-shot method aims at (nil for iterative magnitude methods, whose
    /// density is realised rather than preset).
    var targetDensity: Double? {
        switch self {
        case .synflow(let density, _, _, _), .random(let density, _), .magnitudeAtInit(let density, _), .snip(let density, _, _): density
        case .lotteryTicket, .han: nil
        }
    }
}
