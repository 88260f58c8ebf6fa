import Foundation
import Model
import TaskRuntime

/// The task graph of a sweep: every task once (by id), in an order where inputs come first.
public struct SweepPlan: Sendable {
    /// Tasks in dependency order.
    public private(set) var tasks: [TaskSpec] = []
    private var index: [String: Int] = [:]

    /// The plan of `sweep`.
    public init(_ sweep: SweepSpec) throws(SweepError) {
        let preset = try sweep.resolvedPreset()
        let input = preset.training.inputShape
        let architecture = ResNet18.Architecture(width: preset.training.width, inputChannels: input.channels, classes: 10)
        for seed in sweep.seeds {
            var training = preset.training
            training.seed = seed
            let theta0 = add(.initialise(architecture, seed: seed), [:], label("init", "", seed, 0, 1, reported: false))
            func trainTask(_ config: TrainingConfig, initial: String, mask: String?, _ labels: TaskSpec.Labels) -> String {
                add(.train(config), mask.map { ["initial": initial, "mask": $0] } ?? ["initial": initial], labels)
            }
            var dense: String?
            if sweep.dense || sweep.lotteryRounds > 0 || sweep.hanIterations > 0 {
                dense = trainTask(training, initial: theta0, mask: nil, label("dense", "", seed, 0, 1))
            }
            if let dense, sweep.lotteryRounds > 0 {
                var weights = dense, mask: String? = nil
                for round in 1...sweep.lotteryRounds {
                    let prune = add(.prune(.lotteryTicket(), data: training), mask.map { ["weights": weights, "mask": $0] } ?? ["weights": weights],
                                    label("lottery-ticket", "layerwise", seed, round, nil, reported: false))
                    weights = trainTask(training, initial: theta0, mask: prune,
                                        label("lottery-ticket", "layerwise", seed, round, pow(0.8, Double(round))))
                    mask = prune
                }
            }
            if let dense, sweep.hanIterations > 0 {
                let han = preset.hanTraining(seed: seed)
                var weights = trainTask(han, initial: dense, mask: nil, label("han", "q=1", seed, 0, nil))
                var mask: String? = nil
                for iteration in 1..<sweep.hanIterations {
                    let prune = add(.prune(.han(), data: training), mask.map { ["weights": weights, "mask": $0] } ?? ["weights": weights],
                                    label("han", "q=1", seed, iteration, nil, reported: false))
                    weights = trainTask(han, initial: weights, mask: prune, label("han", "q=1", seed, iteration, nil))
                    mask = prune
                }
            }
            for iterations in sweep.synflowIterations {
                for density in sweep.synflowDensities {
                    let prune = add(.prune(.synflow(density: density, iterations: iterations), data: training), ["weights": theta0],
                                    label("synflow", "T=\(iterations)", seed, 0, density, reported: false))
                    _ = trainTask(training, initial: theta0, mask: prune, label("synflow", "T=\(iterations)", seed, 0, density))
                }
            }
            for name in sweep.baselines {
                for density in sweep.baselineDensities {
                    let method: PruningMethod = switch name {
                    case "random": .random(density: density)
                    case "magnitude-at-init": .magnitudeAtInit(density: density)
                    case "snip": .snip(density: density)
                    default: .synflow(density: density)
                    }
                    let options = name == "synflow" ? "T=100" : ""
                    let prune = add(.prune(method, data: training), ["weights": theta0], label(name, options, seed, 0, density, reported: false))
                    _ = trainTask(training, initial: theta0, mask: prune, label(name, options, seed, 0, density))
                }
            }
        }
    }

    private func label(_ method: String, _ options: String, _ seed: UInt64, _ round: Int, _ density: Double?, reported: Bool = true) -> TaskSpec.Labels {
        TaskSpec.Labels(method: method, options: options, seed: seed, round: round, targetDensity: density, reported: reported)
    }

    /// Adds a task unless an identical one (same id) is planned, and returns its id.
    private mutating func add(_ step: TaskSpec.Step, _ inputs: [String: String], _ labels: TaskSpec.Labels) -> String {
        let task = TaskSpec(step: step, inputs: inputs, labels: labels)
        let id = task.id
        if index[id] == nil {
            index[id] = tasks.count
            tasks.append(task)
        }
        return id
    }

    /// The task with `id`.
    public func task(_ id: String) -> TaskSpec? { index[id].map { tasks[$0] } }
}

