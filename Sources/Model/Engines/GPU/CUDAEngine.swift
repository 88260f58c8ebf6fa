import Foundation
import Logging

/// The GPU engine: the datasets live on the device (uploaded once), each epoch's batch plans and
/// learning rates are uploaded at its start, and every step — augmentation, forward, loss,
/// backward, SGD and the step counter — is one captured CUDA graph launch.
///
/// A pass (training or evaluation at one batch size) runs eagerly the first time, which loads
/// every kernel and lets cuDNN settle; its second use captures it into a graph that later steps
/// replay. Graph and eager launches run the same kernels with the same arguments, so results do
/// not depend on which was used. Set `PRUNESWEEP_CUDA_GRAPHS=0` to launch eagerly throughout.
public final class CUDAEngine: TrainingEngine {
    private let device: CUDADevice
    private let network: GPUNetwork
    private let config: TrainingConfig
    private let precision: Precision
    private let train: DeviceDataset, validation: DeviceDataset, test: DeviceDataset
    private let plans: DeviceBuffer, schedule: DeviceBuffer, counter: DeviceBuffer, totals: DeviceBuffer
    private let trainingPadding: Int
    private var passes: [Pass: PassState] = [:]
    private let useGraphs: Bool
    /// Set when a capture failed: the message says why, and the engine goes on eagerly.
    public private(set) var graphFailure: String?
    /// Whether a training step has been replayed from a captured graph.
    private var replayedTrainingGraph = false

    private struct Pass: Hashable {
        var split: Split, n: Int
    }

    private enum Split: Hashable { case train, validation, test }

    private enum PassState {
        case warmed, graph(OpaquePointer?), eager
    }

    /// A split's images on the device, with its normalisation and, for a split that is
    /// evaluated, its evaluation plan (every image once, in order, uncropped).
    private struct DeviceDataset {
        let pixels: DeviceBuffer, labels: DeviceBuffer, scale: DeviceBuffer, shift: DeviceBuffer, evaluationPlan: DeviceBuffer?
        let count: Int

        init(_ dataset: ImageDataset, on device: CUDADevice, evaluated: Bool) throws(GPUError) {
            count = dataset.count
            pixels = try device.allocate(bytes: dataset.pixels.count)
            try device.upload(dataset.pixels, to: pixels.address)
            labels = try device.allocate(bytes: 4 * dataset.count)
            try device.upload(dataset.labels, to: labels.address)
            scale = try device.allocate(bytes: 4 * dataset.channels)
            try device.upload(dataset.std.map { 1 / (255 * $0) }, to: scale.address)
            shift = try device.allocate(bytes: 4 * dataset.channels)
            try device.upload(zip(dataset.mean, dataset.std).map { -$0 / $1 }, to: shift.address)
            guard evaluated else {
                evaluationPlan = nil
                return
            }
            var plan: RandomStream? = nil
            let words = BatchPlan(dataset, indices: Array(0..<dataset.count)[...], random: &plan).packed
            let evaluationPlan = try device.allocate(bytes: 4 * Swift.max(words.count, 1))
            try device.upload(words, to: evaluationPlan.address)
            self.evaluationPlan = evaluationPlan
        }
    }

    /// An engine for `network`'s architecture on `device`, with `data` uploaded. `graphs`
    /// overrides `PRUNESWEEP_CUDA_GRAPHS` (the benchmark compares both ways).
    public init(device: CUDADevice, network host: ResNet18, data: DataSplits, config: TrainingConfig, precision: Precision,
                graphs: Bool? = nil) throws(GPUError) {
        try device.makeCurrent()
        self.device = device
        self.config = config
        self.precision = precision
        network = try GPUNetwork(device: device, host: host, precision: precision, maxBatch: config.batchSize,
                                 imageHeight: data.train.height, imageWidth: data.train.width)
        // The trainer evaluates only validation and test: the training split needs no plan.
        train = try DeviceDataset(data.train, on: device, evaluated: false)
        validation = try DeviceDataset(data.validation, on: device, evaluated: true)
        test = try DeviceDataset(data.test, on: device, evaluated: true)
        let steps = (data.train.count + config.batchSize - 1) / config.batchSize
        plans = try device.allocate(bytes: 4 * 4 * steps * config.batchSize)
        schedule = try device.allocate(bytes: 4 * 2 * steps)
        counter = try device.allocate(bytes: 4)
        totals = try device.allocate(bytes: 16)
        trainingPadding = config.augment ? BatchPlan.cropPadding(forSide: Swift.min(data.train.height, data.train.width)) : 0
        useGraphs = graphs ?? (ProcessInfo.processInfo.environment["PRUNESWEEP_CUDA_GRAPHS"] != "0")
        try device.synchronize()
    }

    public var deviceName: String { "cuda:\(device.info.index) \(device.info.name)" }
    public var precisionName: String { precision.rawValue }
    /// True when training steps were replayed from CUDA graphs and no capture failed; false
    /// when graphs were turned off or a capture failed (then `graphFailure` says why).
    public var usedCUDAGraphs: Bool? { useGraphs && graphFailure == nil && replayedTrainingGraph }
    /// The convolution algorithms chosen so far, one line per shape and batch size.
    public var convolutionAlgorithms: [String] { network.algorithmChoices }

    /// Why an epoch's batch sizes cannot run on buffers sized for `batchSize` images and
    /// `maxSteps` steps, or nil when they can: every batch holds 1…batchSize images, all but the
    /// last exactly batchSize (the plans are packed at that stride), and there is one learning
    /// rate per batch. A larger batch would make `augment` and every layer write past buffers
    /// allocated for `batchSize` images.
    static func epochProblem(batchSizes: [Int], learningRates: Int, batchSize: Int, maxSteps: Int) -> String? {
        if batchSizes.count > maxSteps {
            return "an epoch of \(batchSizes.count) batches does not fit the \(maxSteps) steps this engine was sized for"
        }
        if learningRates != batchSizes.count {
            return "an epoch of \(batchSizes.count) batches came with \(learningRates) learning rates; give one per batch"
        }
        for (index, size) in batchSizes.enumerated() {
            let last = index == batchSizes.count - 1
            if size < 1 || size > batchSize || (!last && size != batchSize) {
                return "batch \(index + 1) of \(batchSizes.count) has \(size) images; this engine takes batches of exactly \(batchSize), "
                    + "the last of 1…\(batchSize) (TrainingConfig.batchSize)"
            }
        }
        return nil
    }

    public func trainEpoch(_ batches: [BatchPlan], learningRates: [Float], momentumInitialized: Bool) throws(ModelError) -> (lossSum: Double, correct: Int) {
        do throws(GPUError) {
            try device.makeCurrent()
            if let problem = Self.epochProblem(batchSizes: batches.map(\.indices.count), learningRates: learningRates.count,
                                               batchSize: config.batchSize, maxSteps: schedule.bytes / 8) {
                throw GPUError.invalid(problem)
            }
            try device.upload(batches.flatMap(\.packed), to: plans.address)
            var rates: [Float] = []
            for (step, rate) in learningRates.enumerated() { rates += [rate, step == 0 && !momentumInitialized ? 1 : 0] }
            try device.upload(rates, to: schedule.address)
            try resetCounters()
            for batch in batches { try run(Pass(split: .train, n: batch.indices.count)) }
            return try readTotals()
        } catch {
            throw .device(error)
        }
    }

    public func evaluate(_ split: EvaluationSplit) throws(ModelError) -> (lossSum: Double, correct: Int) {
        do throws(GPUError) {
            try device.makeCurrent()
            let which: Split = split == .test ? .test : .validation
            let count = dataset(which).count
            try resetCounters()
            for first in stride(from: 0, to: count, by: config.batchSize) {
                try run(Pass(split: which, n: Swift.min(config.batchSize, count - first)))
            }
            return try readTotals()
        } catch {
            throw .device(error)
        }
    }

    public func synchronizeHost() throws(ModelError) {
        do throws(GPUError) { try network.pull() } catch { throw .device(error) }
    }

    public func synchronizeDevice() throws(ModelError) {
        do throws(GPUError) { try network.push() } catch { throw .device(error) }
    }

    /// Milliseconds of one eagerly launched training step on `plan` spent in cuDNN/cuBLAS and
    /// in PruneSweep's kernels (the benchmark's breakdown; it trains on the plan).
    func profileStep(_ plan: BatchPlan, learningRate: Float) throws(GPUError) -> [GPUProfile.Category: Double] {
        try device.makeCurrent()
        if let problem = Self.epochProblem(batchSizes: [plan.indices.count], learningRates: 1, batchSize: config.batchSize, maxSteps: 1) {
            throw .invalid(problem)
        }
        try device.upload(plan.packed, to: plans.address)
        try device.upload([learningRate, 0], to: schedule.address)
        try resetCounters()
        let pass = Pass(split: .train, n: plan.indices.count)
        if passes[pass] == nil { try network.prepare(n: pass.n) }
        let profile = GPUProfile(device: device)
        network.profile = profile
        defer { network.profile = nil }
        try encode(pass)
        return try profile.collect()
    }

    // MARK: - Passes

    private func dataset(_ split: Split) -> DeviceDataset {
        switch split {
        case .train: train
        case .validation: validation
        case .test: test
        }
    }

    private func resetCounters() throws(GPUError) {
        try device.fill(counter.address, words: 1, pattern: 0)
        try device.fill(totals.address, words: 4, pattern: 0)
    }

    private func readTotals() throws(GPUError) -> (lossSum: Double, correct: Int) {
        let values = try device.download(totals.address, count: 2, as: Double.self)
        return (values[0], Int(values[1].rounded()))
    }

    /// Queues one step of `pass`: the batch the counter points at, through the network, into
    /// the totals, and (training) the update; then the counter moves on.
    private func encode(_ pass: Pass) throws(GPUError) {
        let data = dataset(pass.split), training = pass.split == .train
        let input = network.input
        let elements = pass.n * input.channels * input.height * input.width
        try network.launch("augment", elements: elements, [
            .pointer(data.pixels.address), .pointer(data.labels.address), .pointer(training ? plans.address : data.evaluationPlan?.address ?? 0),
            .pointer(counter.address), .int(config.batchSize), .int(pass.n), .int(input.channels), .int(input.height), .int(input.width),
            .int(training ? trainingPadding : 0), .pointer(data.scale.address), .pointer(data.shift.address),
            .pointer(input.address), .pointer(network.labels.address),
        ])
        try network.forward(n: pass.n, training: training)
        try network.loss(n: pass.n, training: training)
        try network.accumulate(n: pass.n, into: totals.address)
        if training {
            try network.backward(n: pass.n)
            try network.update(optimizer: config.optimizer, schedule: schedule.address, step: counter.address)
        }
        try network.launch("advance", elements: 1, [.pointer(counter.address)])
    }

    private func run(_ pass: Pass) throws(GPUError) {
        switch passes[pass] {
        case nil:
            try network.prepare(n: pass.n)
            try encode(pass)
            passes[pass] = useGraphs ? .warmed : .eager
        case .warmed:
            if let graph = try capture(pass) {
                passes[pass] = .graph(graph)
                try launch(graph, pass)
            } else {
                passes[pass] = .eager
                try encode(pass)
            }
        case .graph(let graph):
            try launch(graph, pass)
        case .eager:
            try encode(pass)
        }
    }

    private func launch(_ graph: OpaquePointer?, _ pass: Pass) throws(GPUError) {
        try device.driver.check(device.driver.cuGraphLaunch(graph, device.stream), "cuGraphLaunch")
        if pass.split == .train { replayedTrainingGraph = true }
    }

    /// Notes the first capture failure: one warning naming the call, then eager launches.
    private func captureFailed(_ pass: Pass, _ error: GPUError) {
        guard graphFailure == nil else { return }
        let call = if case .call(_, let function, _, _) = error { function } else { "the step's launches" }
        graphFailure = "capturing a \(pass.split) step of \(pass.n) images into a CUDA graph failed in \(call) (\(error)); running without CUDA graphs"
        device.logger.warning("\(graphFailure ?? "")")
    }

    /// Records one step of `pass` into an instantiated graph; nil (and `graphFailure` set)
    /// when the step cannot be captured, after which the pass runs eagerly.
    private func capture(_ pass: Pass) throws(GPUError) -> OpaquePointer? {
        let driver = device.driver
        try driver.check(driver.cuStreamBeginCapture(device.stream, 1), "cuStreamBeginCapture")  // thread-local mode
        var recorded: GPUError?
        do { try encode(pass) } catch { recorded = error }
        var graph: OpaquePointer?
        let ended = driver.cuStreamEndCapture(device.stream, &graph)
        defer { if graph != nil { _ = driver.cuGraphDestroy(graph) } }
        if let recorded {
            captureFailed(pass, recorded)
            return nil
        }
        do {
            try driver.check(ended, "cuStreamEndCapture")
            var executable: OpaquePointer?
            try driver.check(driver.cuGraphInstantiateWithFlags(&executable, graph, 0), "cuGraphInstantiateWithFlags")
            return executable
        } catch {
            captureFailed(pass, error)
            return nil
        }
    }

    deinit {
        let driver = device.driver, graphs = passes.values
        device.releasing { for case .graph(let graph) in graphs { _ = driver.cuGraphExecDestroy(graph) } }
    }
}
