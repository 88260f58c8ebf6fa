import BuildStamp
import TaskRuntime

/// One row of `results.json`: a finished training task with everything needed to place it in
/// the study's tables and to trace it back to its code, configuration and machine.
public struct ResultRecord: Codable, Equatable, Sendable {
    /// Method family, distinguishing options, run seed and round (LTH round / Han iteration).
    public var method: String, options: String, seed: UInt64, round: Int
    /// The density the task aimed at, where density is a parameter of the step (SynFlow, the
    /// baselines, Lottery Ticket's 0.8^r); nil for Han, whose density is realised from the data.
    /// Records written before this field existed decode with nil (see `SweepOutputs.write`).
    public var targetDensity: Double?
    /// The sweep axes that change this task, by name (`TaskSpec.Labels.axes`), e.g.
    /// `{"learningRate": 0.05, "rewindEpoch": 1}`; nil for a task of a sweep without axes.
    public var axes: [String: AxisValue]? = nil
    /// Fraction of prunable weights kept, and removed, as realised.
    public var density: Double, sparsity: Double
    /// Prunable weights kept, and prunable weights in all.
    public var remainingWeights: Int, prunableWeights: Int
    /// All parameters of the network.
    public var parameters: Int
    /// Size in MB (10^6 bytes) as float32 dense, and sparse (kept values plus a one-bit mask per prunable weight).
    public var sizeMBDense: Double, sizeMBSparse: Double
    /// Best validation accuracy (nil without validation), and test accuracy of the last epoch.
    public var bestValidationAccuracy: Double?, finalTestAccuracy: Double
    /// Test accuracy of the best-validation weights (nil without validation).
    public var bestValidationTestAccuracy: Double?
    /// Epochs trained and wall seconds of the task.
    public var epochs: Int, wallSeconds: Double
    /// Where it ran: worker, host, BLAS core, and the GPU index given to the worker (if any).
    public var worker: String, host: String, blasCore: String
    /// The worker's `CUDA_VISIBLE_DEVICES`, when its slot was given a GPU.
    public var gpu: String? = nil
    /// The device that trained it ("cpu", "cuda:0 NVIDIA H200") and its arithmetic ("fp32", "tf32").
    public var device: String? = nil, precision: String? = nil
    /// Whether its training steps ran as CUDA graphs (false: off, or a capture failed, see the
    /// worker's log); nil on the CPU and in records written before the field.
    public var cudaGraphs: Bool? = nil
    /// The training run's identity and the code version.
    public var configHash: String, codeVersion: String
    /// The git commit of the worker's build ("unknown" outside a git clone), and whether its
    /// tree had uncommitted changes (`BuildInfo`); nil in records written before the fields.
    public var commit: String? = nil, dirty: Bool? = nil
    /// Mean wall seconds per epoch (training and evaluation) over the run's history.
    public var secondsPerEpoch: Double? = nil
    /// The convolutions the CPU's sparse engine ran (`metrics.json`'s `sparse` adds the mode,
    /// each layer's density and timings); nil for unmasked or GPU runs and older records.
    public var sparseLayers: [String]? = nil
    /// The CPU's column-chunk budgets (MiB) by wide layer where they left the default, and the
    /// wide layers evaluated on the direct kernels (`metrics.json`'s fields); nil where none.
    public var columnChunks: [String: Int]? = nil, evaluationDirectLayers: [String]? = nil

    /// Records the build that trained it, from the worker's `hello.build`.
    public mutating func stamp(build identifier: String?) {
        let build = identifier.map(BuildInfo.init(identifier:))
        commit = build?.commit
        dirty = build?.dirty
    }

    /// The two model sizes for `parameters` parameters of which `prunable` are prunable and
    /// `remaining` of those kept.
    public static func sizes(parameters: Int, prunable: Int, remaining: Int) -> (dense: Double, sparse: Double) {
        let dense = Double(parameters * 4) / 1e6
        let sparse = (Double((parameters - prunable + remaining) * 4) + Double(prunable) / 8) / 1e6
        return (dense, sparse)
    }
}
