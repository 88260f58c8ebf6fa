/// What one training epoch measured.
public struct EpochMetrics: Codable, Hashable, Sendable {
    /// The 1-based epoch.
    public var epoch: Int
    /// Mean training loss and accuracy over the epoch's batches (augmented, train mode).
    public var trainLoss: Double, trainAccuracy: Double
    /// Accuracy on the held-out validation images (nil without a validation split).
    public var validationAccuracy: Double?
    /// Accuracy and mean loss on the test images, at the end of the epoch.
    public var testAccuracy: Double, testLoss: Double
    /// The learning rate of the epoch's first step.
    public var learningRate: Double
    /// Wall time of the epoch (training and evaluation) and training throughput.
    public var seconds: Double, imagesPerSecond: Double
}

/// Where a run stands: everything beyond the tensors that a resumed run needs to continue
/// exactly where the interrupted one stopped.
public struct TrainingProgress: Codable, Hashable, Sendable {
    /// The identity (configuration hash) of the run this belongs to.
    public var configIdentity: String
    /// Epochs finished.
    public var completedEpochs: Int
    /// Optimiser steps on the schedule's clock (fast-forwarded when a run starts at a rewind point).
    public var optimizerSteps: Int
    /// Whether the momentum buffers hold a value (false until the run's first step: PyTorch
    /// then initialises them to the first update).
    public var momentumInitialized: Bool
    /// The shuffling and augmentation streams' states, as hex words.
    public var shuffleState: [String], augmentationState: [String]
    /// Every finished epoch's metrics.
    public var history: [EpochMetrics]
    /// The best validation accuracy so far and its epoch.
    public var bestValidationAccuracy: Double?, bestEpoch: Int?
    /// The convolutions the sparse engine ran when the run started (nil: not a masked CPU
    /// run, or a checkpoint from before the sparse engine), so a resumed run keeps them.
    public var sparseLayers: [String]? = nil
    /// The column-chunk budgets (MiB) of the wide convolutions that did not keep the default,
    /// by layer (nil: all kept it), chosen when the run started (`ColumnChunkSelection`), so a
    /// resumed run sums its weight gradients in the same order.
    public var columnChunks: [String: Int]? = nil
    /// The wide convolutions evaluated on the direct kernels (`EvaluationRouteSelection`),
    /// chosen when the run started, so a resumed run evaluates alike (nil: none, or a
    /// checkpoint from before the choice, which evaluated every one through GEMM).
    public var evaluationDirectLayers: [String]? = nil

    static func hex(_ stream: RandomStream) -> [String] { stream.state.map { String($0, radix: 16) } }

    static func stream(_ words: [String]) throws(ModelError) -> RandomStream {
        let values = words.compactMap { UInt64($0, radix: 16) }
        guard values.count == words.count else { throw .invalidCheckpoint("random state \(words) is not hex words") }
        return try RandomStream(state: values)
    }
}
