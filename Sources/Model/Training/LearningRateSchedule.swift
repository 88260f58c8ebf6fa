import Foundation

/// How the learning rate changes over a run.
public enum LearningRateSchedule: Codable, Hashable, Sendable {
    /// PyTorch `MultiStepLR` stepped once per epoch: during 1-based epoch e the rate is
    /// `base · γ^(number of milestones < e)`, so milestone 60 gives epochs 1–60 the base rate.
    case multiStep(milestones: [Int], gamma: Double)
    /// PyTorch `CosineAnnealingLR` stepped once per batch, from the base rate at the first
    /// step down to 0 after the last: `base · (1 + cos(π·t/T)) / 2` for 0-based step t of T.
    case cosine
    /// The base rate throughout.
    case constant

    /// The rate for 0-based optimiser step `step` of `totalSteps`, in 1-based epoch `epoch`.
    public func rate(base: Double, epoch: Int, step: Int, totalSteps: Int) -> Double {
        switch self {
        case .multiStep(let milestones, let gamma):
            return base * pow(gamma, Double(milestones.filter { $0 < epoch }.count))
        case .cosine:
            return base * (1 + cos(Double.pi * Double(step) / Double(Swift.max(totalSteps, 1)))) / 2
        case .constant:
            return base
        }
    }
}
