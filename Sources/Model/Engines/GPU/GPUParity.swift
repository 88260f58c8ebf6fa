/// The GPU's fp32 arithmetic against the PyTorch width-8 fixture (the CPU's `ParityTests`,
/// run on a device): train-mode logits and loss, every gradient, parameters and BN buffers
/// after each of two SGD steps, and eval-mode logits, as relative errors ‖a − b‖/‖b‖.
public enum GPUParity {
    /// One comparison: its name, the measured error and the limit it must stay under.
    public struct Check: Codable, Sendable {
        public var name: String, value: Double, limit: Double
        public var passed: Bool { value < limit }

        /// A check named `name` that measured `value` against `limit`.
        public init(name: String, value: Double, limit: Double) {
            self.name = name
            self.value = value
            self.limit = limit
        }
    }

    /// `‖a − b‖ / ‖b‖` in double precision.
    public static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        var difference = 0.0, norm = 0.0
        for (x, y) in zip(a, b) {
            difference += Double(x - y) * Double(x - y)
            norm += Double(y) * Double(y)
        }
        return (difference / Swift.max(norm, 1e-300)).squareRoot()
    }

    /// Runs the comparison on `device` with the fixture file's tensors (`input`, `target`,
    /// `init.*`, `train.*`, `grad.*`, `step1.*`, `step2.*`, `eval.logits`).
    public static func run(on device: CUDADevice, fixture: Safetensors) throws(ModelError) -> [Check] {
        let host = ResNet18(.init(width: 8, inputChannels: 3, classes: 10))
        try host.loadState(from: fixture, prefix: "init.", source: "fixture")
        let input = try fixture.tensor("input")
        let labels = try fixture.integers("target").map(Int32.init)
        let n = labels.count
        var checks: [Check] = []
        do {
            try device.makeCurrent()
            let network = try GPUNetwork(device: device, host: host, precision: .fp32, maxBatch: n, imageHeight: 32, imageWidth: 32)
            try network.push()
            try device.upload(input.array, to: network.input.address)
            try device.upload(labels, to: network.labels.address)
            let schedule = try device.allocate(bytes: 16), step = try device.allocate(bytes: 4)
            try device.upload([Float(0.1), 1, 0.1, 0], to: schedule.address)
            try network.prepare(n: n)

            func download(_ buffer: DeviceBuffer, _ count: Int) throws(GPUError) -> [Float] {
                try device.download(buffer.address, count: count)
            }
            func trainStep(_ label: String, lossName: String) throws(ModelError) {
                func gpu<T>(_ body: () throws(GPUError) -> T) throws(ModelError) -> T {
                    do { return try body() } catch { throw .device(error) }
                }
                let expected = Double(try fixture.tensor(lossName)[0])
                let (loss, logits) = try gpu { () throws(GPUError) in
                    try network.forward(n: n, training: true)
                    try network.loss(n: n, training: true)
                    return (try download(network.sampleLoss, n).reduce(0) { $0 + Double($1) } / Double(n), try download(network.logits, n * 10))
                }
                checks.append(Check(name: "\(label) loss", value: abs(loss - expected) / abs(expected), limit: 1e-4))
                if label == "step 1" {
                    checks.append(Check(name: "train logits", value: relativeError(logits, try fixture.tensor("train.logits").array), limit: 1e-4))
                }
                try gpu { () throws(GPUError) in
                    try network.backward(n: n)
                    try network.pullGradients()
                }
                if label == "step 1" {
                    let worst = try host.parameters.map { (p) throws(ModelError) in relativeError(p.gradient.array, try fixture.tensor("grad." + p.name).array) }.max() ?? 0
                    checks.append(Check(name: "worst of \(host.parameters.count) gradients", value: worst, limit: 1e-4))
                }
                try gpu { () throws(GPUError) in
                    try network.update(optimizer: SGD(momentum: 0.9, weightDecay: 5e-4), schedule: schedule.address, step: step.address)
                    try network.launch("advance", elements: 1, [.pointer(step.address)])
                    try network.pull()
                }
                let prefix = label == "step 1" ? "step1." : "step2."
                let worst = try host.state.map { (entry) throws(ModelError) in relativeError(entry.tensor.array, try fixture.tensor(prefix + entry.name).array) }.max() ?? 0
                checks.append(Check(name: "\(label): worst of \(host.state.count) parameters and BN buffers", value: worst, limit: 1e-5))
            }
            try trainStep("step 1", lossName: "train.loss")
            try trainStep("step 2", lossName: "step2.loss")
            try network.forward(n: n, training: false)
            let evalLogits = try download(network.logits, n * 10)
            checks.append(Check(name: "eval logits", value: relativeError(evalLogits, try fixture.tensor("eval.logits").array), limit: 1e-4))
        } catch let error as ModelError {
            throw error
        } catch let error as GPUError {
            throw .device(error)
        } catch {
            throw .io("\(error)")
        }
        return checks
    }
}
