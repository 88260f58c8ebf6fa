import Foundation

/// Softmax cross-entropy averaged over the batch (PyTorch `CrossEntropyLoss()`), on logits
/// stored class-major (`[classes, N]`).
public final class CrossEntropy {
    private let gradient = Workspace()

    /// A loss (it has no parameters).
    public init() {}

    /// The loss and the number of correct top-1 predictions for one batch.
    public struct Result: Sendable {
        /// Mean cross-entropy over the batch.
        public var loss: Double
        /// Images whose largest logit is their label.
        public var correct: Int
    }

    /// The loss of `logits` against `labels`, and `∂loss/∂logits` (kept for `backward`).
    public func forward(_ logits: FeatureMap, labels: UnsafeBufferPointer<Int32>) -> Result {
        let classes = logits.channels, n = logits.batch
        precondition(labels.count >= n, "CrossEntropy: \(labels.count) labels for \(n) images")
        let grad = gradient.reserve(classes * n)
        var total = 0.0
        var correct = 0
        for image in 0..<n {
            var largest = -Float.infinity
            var predicted = 0
            for k in 0..<classes where logits.data[k * n + image] > largest {
                largest = logits.data[k * n + image]
                predicted = k
            }
            var denominator = 0.0
            for k in 0..<classes { denominator += exp(Double(logits.data[k * n + image] - largest)) }
            let label = Int(labels[image])
            total += log(denominator) - Double(logits.data[label * n + image] - largest)
            if predicted == label { correct += 1 }
            for k in 0..<classes {
                let p = exp(Double(logits.data[k * n + image] - largest)) / denominator
                grad[k * n + image] = Float((p - (k == label ? 1 : 0)) / Double(n))
            }
        }
        return Result(loss: total / Double(n), correct: correct)
    }

    /// `∂loss/∂logits` of the last forward.
    public func backward(like logits: FeatureMap) -> FeatureMap {
        logits.sameShape(at: gradient.pointer)
    }
}
