/// How a convolution's cuDNN algorithm is chosen, apart from the GPU so it can be tested:
/// cuDNN's heuristic list (`cudnnGet…Algorithm_v7`, ordered by expected speed, nothing timed)
/// is walked in order and the first entry that is usable, deterministic, allowed by the
/// precision and fits the workspace is taken.
///
/// The list depends only on the shape, the device model and the cuDNN version, so every
/// process on such a host makes the same choice: a resumed run and a rerun of a task compute
/// with the same algorithms. Timing (`cudnnFind…`) could pick another algorithm after a restart
/// because of noise, and two deterministic algorithms need not give the same bits.
enum ConvolutionAlgorithmChoice {
    /// The algorithm to run and the math mode to set on the convolution descriptor for it.
    struct Choice: Equatable {
        var algorithm: Int32, math: Int32, workspace: Int
    }

    /// The first usable entry of `candidates` (heuristic order). `workspaceNeeded` is the
    /// workspace an entry requires (cuDNN's `cudnnGet…WorkspaceSize`; nil when that query
    /// failed, which makes the entry unusable). In fp32 no tensor-core entry is taken and the
    /// descriptor is set to FMA math, so cuDNN cannot use TF32 either; in TF32 the entry's own
    /// math mode is set.
    static func choose(_ candidates: [CUDNN.Performance], precision: Precision, workspaceBytes: Int,
                       workspaceNeeded: (CUDNN.Performance) -> Int?) -> Choice? {
        let tensorOp = [CUDNN.Constant.mathTensorOp, CUDNN.Constant.mathTensorOpAllowConversion]
        for candidate in candidates where candidate.status == 0 && candidate.deterministic {
            if precision == .fp32 && tensorOp.contains(candidate.mathType) { continue }
            guard let needed = workspaceNeeded(candidate), needed <= workspaceBytes else { continue }
            return Choice(algorithm: candidate.algorithm, math: precision == .fp32 ? CUDNN.Constant.mathFMA : candidate.mathType, workspace: needed)
        }
        return nil
    }

    /// Why nothing was chosen, for the error: how many entries cuDNN offered and what ruled
    /// each kind out.
    static func refusal(_ candidates: [CUDNN.Performance], precision: Precision) -> String {
        let usable = candidates.filter { $0.status == 0 }
        let deterministic = usable.filter(\.deterministic)
        return "cuDNN's heuristics offered \(candidates.count) algorithms, \(usable.count) usable, \(deterministic.count) of those deterministic"
            + (precision == .fp32 ? " (tensor-core ones excluded in fp32)" : "")
    }
}
