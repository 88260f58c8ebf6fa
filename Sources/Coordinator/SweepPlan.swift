import Foundation
import Model
import TaskRuntime

/// The task graph of a sweep: every task once (by id), in an order where inputs come first.
/// Two experiments, grid points or sweeps that need the same θ0, dense run, θK or prune share
/// one task, because a task's id is the hash of its step and its inputs' ids.
public struct SweepPlan: Sendable {
    /// Tasks in dependency order.
    public private(set) var tasks: [TaskSpec] = []
    /// How many experiment points (seed × sweep point × experiment point) use each task, by id.
    public private(set) var uses: [String: Int] = [:]
    /// The experiment points planned (seeds included).
    public private(set) var points = 0
    private var index: [String: Int] = [:]

    private init() {}

    /// The plan of `sweep`; a recipe that cannot train or two experiments that expand to the
    /// same tasks are refused with the experiment and the key named.
    public init(_ sweep: SweepSpec) throws(SweepError) {
        let base = try sweep.resolvedPreset()
        var recipes: [[String: AxisValue]: Preset] = [:]
        for seed in sweep.seeds {
            for sweepPoint in Self.points(sweep.grid) {
                // Within one sweep point no two experiment points may plan the same results; across
                // sweep points they may (an axis such as hanEpochs changes no SynFlow run).
                var owners: [Set<String>: (index: Int, context: String)] = [:]
                for (number, experiment) in sweep.experiments.enumerated() {
                    let methodOptions = SweepSchema.methods[experiment.method]?.options ?? [:]
                    for experimentPoint in Self.points(experiment.grid) {
                        let point = sweepPoint.merging(experimentPoint) { $1 }
                        let methodPoint = experimentPoint.filter { methodOptions[$0.key] != nil }
                        let recipePoint = experimentPoint.filter { methodOptions[$0.key] == nil }
                        let context = "experiments[\(number)] (\(experiment.method))" + (point.isEmpty ? "" : " at \(Self.describe(point))")
                        let recipeKey = sweepPoint.merging(recipePoint) { $1 }.merging(["#experiment": .number(Double(number))]) { $1 }
                        let preset: Preset
                        if let known = recipes[recipeKey] {
                            preset = known
                        } else {
                            let overrides = try sweep.overrides.setting(axes: sweepPoint, context: context).merged(with: experiment.overrides)
                                .setting(axes: recipePoint, context: context)
                            preset = try overrides.applied(to: Preset.builtIn[sweep.preset] ?? base, context: context)
                            recipes[recipeKey] = preset
                        }
                        var options = SweepSchema.methods[experiment.method]?.defaults ?? [:]
                        options.merge(experiment.options) { $1 }
                        options.merge(methodPoint) { $1 }
                        var planner = PointPlanner(plan: self, seed: seed, preset: preset, axes: point.filter { $0.key != "density" },
                                                   recipeAxes: Set(sweepPoint.keys).union(recipePoint.keys), methodAxes: Set(methodPoint.keys))
                        self = SweepPlan()  // the planner holds the only copy: no copy-on-write per point
                        let own = try planner.plan(experiment.method, options: options, context: context)
                        self = planner.plan
                        points += 1
                        if let first = owners[own] {
                            let shared = own.compactMap { task($0)?.summary }.sorted().first ?? ""
                            throw .invalid(first.index == number
                                           ? "\(context) plans the same tasks as \(first.context) (\(shared)): an option that changes nothing there is not an axis"
                                           : "\(context) and \(first.context) expand to the same tasks (\(shared)); remove one or change its options")
                        }
                        owners[own] = (number, context)
                    }
                }
            }
        }
    }

    /// The points of a grid: every combination of its axes' values (axes in key order, values in the order given).
    static func points(_ grid: [String: [AxisValue]]) -> [[String: AxisValue]] {
        grid.sorted { $0.key < $1.key }.reduce([[:]]) { points, axis in
            points.flatMap { point in axis.value.map { point.merging([axis.key: $0]) { $1 } } }
        }
    }

    /// "learningRate=0.05, rewindEpoch=1".
    static func describe(_ point: [String: AxisValue]) -> String {
        point.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }

    /// Adds a task unless an identical one (same id) is planned, and returns its id. Its axes
    /// are those of `point` named in `own` and those of its inputs: only what changes it, so a
    /// shared task carries the axes common to every point that uses it.
    mutating func add(_ step: TaskSpec.Step, _ inputs: [String: String], _ labels: TaskSpec.Labels, point: [String: AxisValue], own: Set<String>) -> String {
        var labels = labels
        labels.axes = point.filter { own.contains($0.key) }
        for input in inputs.values { labels.axes.merge(task(input)?.labels.axes ?? [:]) { mine, _ in mine } }
        let task = TaskSpec(step: step, inputs: inputs, labels: labels)
        let id = task.id
        if index[id] == nil {
            index[id] = tasks.count
            tasks.append(task)
        }
        return id
    }

    /// Counts one more experiment point using `id`.
    mutating func use(_ id: String) { uses[id, default: 0] += 1 }

    /// The task with `id`.
    public func task(_ id: String) -> TaskSpec? { index[id].map { tasks[$0] } }
}

/// Plans one experiment point (one seed, recipe, method and options) into a plan.
private struct PointPlanner {
    var plan: SweepPlan
    let seed: UInt64
    let preset: Preset
    /// The point's axis values (density excluded: it is the target density).
    let axes: [String: AxisValue]
    /// Which of them are preset fields, and which the method's options.
    let recipeAxes: Set<String>, methodAxes: Set<String>
    private var used: Set<String> = []

    init(plan: SweepPlan, seed: UInt64, preset: Preset, axes: [String: AxisValue], recipeAxes: Set<String>, methodAxes: Set<String>) {
        self.plan = plan
        self.seed = seed
        self.preset = preset
        self.axes = axes
        self.recipeAxes = recipeAxes
        self.methodAxes = methodAxes
    }

    private var training: TrainingConfig {
        var training = preset.training
        training.seed = seed
        return training
    }
    private var denseAxes: Set<String> { recipeAxes.subtracting(SweepSchema.hanFields) }

    private mutating func add(_ step: TaskSpec.Step, _ inputs: [String: String], _ method: String, _ options: String, round: Int,
                              density: Double?, reported: Bool = true, own: Set<String>) -> String {
        let id = plan.add(step, inputs, TaskSpec.Labels(method: method, options: options, seed: seed, round: round, targetDensity: density, reported: reported),
                          point: axes, own: own)
        if used.insert(id).inserted { plan.use(id) }
        return id
    }

    private mutating func theta0() -> String {
        let input = preset.training.inputShape
        let architecture = ResNet18.Architecture(width: preset.training.width, inputChannels: input.channels, classes: 10)
        return add(.initialise(architecture, seed: seed), [:], "init", "", round: 0, density: 1, reported: false,
                   own: recipeAxes.intersection(SweepSchema.architectureFields))
    }

    private mutating func dense() -> String {
        let theta0 = theta0()
        return add(.train(training), ["initial": theta0], "dense", "", round: 0, density: 1, own: denseAxes)
    }

    /// Plans the point and returns its own reported tasks (what two experiments must not both plan).
    mutating func plan(_ method: String, options: [String: AxisValue], context: String) throws(SweepError) -> Set<String> {
        func number(_ key: String) -> Double { options[key]?.number ?? 0 }
        func word(_ key: String) -> String { if case .text(let w)? = options[key] { w } else { "" } }
        func flag(_ key: String) -> Bool { options[key] == .flag(true) }
        func written(_ x: Double) -> String { AxisValue.number(x).description }
        let global = word("scope") != "layerwise"
        let scopeLabel = global ? [] : ["scope=layerwise"]
        var own: Set<String> = []
        switch method {
        case "dense":
            own.insert(dense())
        case "lottery-ticket":
            let rounds = Int(number("rounds")), rate = number("rate"), rewind = Int(number("rewindEpoch")), keep = flag("keepClassifier")
            guard rewind < training.epochs else {
                throw .invalid("\(context): rewindEpoch \(rewind) must be below the recipe's epochs (\(training.epochs)), or the rounds have no epoch left to train")
            }
            let label = ([word("scope")] + (rate == 0.2 ? [] : ["rate=\(written(rate))"]) + (keep ? ["keep-classifier"] : [])
                         + (rewind == 0 ? [] : ["rewind=\(rewind)"])).joined(separator: " ")
            var weights = dense(), mask: String? = nil
            var start = theta0(), retraining = training
            if rewind > 0 {
                // θK is the dense recipe's first K epochs as a task of its own, so the dense run
                // keeps the id that rewind-0 experiments, other methods and older run directories share.
                var prefix = training
                prefix.stopEpoch = rewind
                start = add(.train(prefix), ["initial": start], "dense", "to epoch \(rewind)", round: 0, density: 1, reported: false,
                            own: denseAxes.union(methodAxes.intersection(["rewindEpoch"])))
                retraining.startEpoch = rewind
            }
            let pruning = PruningMethod.lotteryTicket(rate: rate, scope: global ? .global : .layerwise, pruneClassifier: !keep)
            for round in 1...max(1, rounds) {
                let prune = add(.prune(pruning, data: training), mask.map { ["weights": weights, "mask": $0] } ?? ["weights": weights],
                                method, label, round: round, density: nil, reported: false,
                                own: denseAxes.union(methodAxes.intersection(["rate", "scope", "keepClassifier"])))
                weights = add(.train(retraining), ["initial": start, "mask": prune], method, label, round: round,
                              density: pow(1 - rate, Double(round)), own: denseAxes.union(methodAxes.intersection(["rewindEpoch"])))
                own.insert(weights)
                mask = prune
            }
        case "han":
            let quality = number("quality"), label = "q=\(written(quality))"
            let han = preset.hanTraining(seed: seed)
            var weights = add(.train(han), ["initial": dense()], method, label, round: 0, density: nil, own: recipeAxes)
            own.insert(weights)
            var mask: String? = nil
            for iteration in 1..<max(1, Int(number("iterations"))) {
                let prune = add(.prune(.han(quality: quality), data: training), mask.map { ["weights": weights, "mask": $0] } ?? ["weights": weights],
                                method, label, round: iteration, density: nil, reported: false,
                                own: denseAxes.union(methodAxes.intersection(["quality"])))
                weights = add(.train(han), ["initial": weights, "mask": prune], method, label, round: iteration, density: nil, own: recipeAxes)
                own.insert(weights)
                mask = prune
            }
        default:
            let density = number("density")
            let pruning: PruningMethod
            var label: [String] = []
            switch method {
            case "synflow":
                let iterations = Int(number("iterations")), linear = word("schedule") == "linear"
                pruning = .synflow(density: density, iterations: iterations, schedule: linear ? .linear : .exponential, global: global)
                label = ["T=\(iterations)"] + (linear ? ["schedule=linear"] : [])
            case "random": pruning = .random(density: density, global: global)
            case "magnitude-at-init": pruning = .magnitudeAtInit(density: density, global: global)
            default:
                let perClass = Int(number("examplesPerClass"))
                pruning = .snip(density: density, examplesPerClass: perClass, global: global)
                label = perClass == 10 ? [] : ["examples=\(perClass)"]
            }
            let optionLabel = (label + scopeLabel).joined(separator: " ")
            let theta0 = theta0()
            let prune = add(.prune(pruning, data: training), ["weights": theta0], method, optionLabel, round: 0, density: density, reported: false,
                            own: denseAxes.union(methodAxes))
            own.insert(add(.train(training), ["initial": theta0, "mask": prune], method, optionLabel, round: 0, density: density, own: denseAxes))
        }
        return own
    }
}
