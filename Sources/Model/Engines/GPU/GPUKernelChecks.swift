/// The GPU's own kernels against the CPU's loops on inputs chosen to expose differences
/// (issue 18): NaN through the ReLUs and the argmax, and the optimiser to the bit. Part of
/// `worker selftest`; each check counts mismatching elements and passes at zero.
public enum GPUKernelChecks {
    /// Runs every check on `device`.
    public static func run(on device: CUDADevice) throws(GPUError) -> [GPUParity.Check] {
        try device.makeCurrent()
        return [try relu(device), try argmax(device)] + (try sgd(device))
    }

    private static func same(_ a: Float, _ b: Float) -> Bool { a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }

    private static func launch(_ device: CUDADevice, _ name: String, elements: Int, _ arguments: [GPUKernels.Argument]) throws(GPUError) {
        try device.kernels.launch(name, elements: elements, stream: device.stream, arguments)
    }

    private static func buffer(_ device: CUDADevice, _ values: [Float]) throws(GPUError) -> DeviceBuffer {
        let buffer = try device.allocate(bytes: 4 * values.count)
        try device.upload(values, to: buffer.address)
        return buffer
    }

    /// relu_forward and add_relu_forward against `Swift.max(v, 0)` (BatchNorm2d's residual sum,
    /// BatchNorm2d's fused ReLU) on NaN, ±0, ±∞ and ordinary values.
    static func relu(_ device: CUDADevice) throws(GPUError) -> GPUParity.Check {
        let values: [Float] = [.nan, -.nan, 0, -0.0, 1.5, -1.5, .infinity, -.infinity, .leastNonzeroMagnitude, -.greatestFiniteMagnitude]
        let shifts: [Float] = [1, 0, .nan, 0, -3, 3, 1, 2, 0, -1]
        let n = values.count
        let x = try buffer(device, values), a = try buffer(device, values), b = try buffer(device, shifts), y = try device.allocate(bytes: 4 * n)
        try launch(device, "relu_forward", elements: n, [.pointer(x.address), .int(n)])
        try launch(device, "add_relu_forward", elements: n, [.pointer(a.address), .pointer(b.address), .pointer(y.address), .int(n)])
        let single = try device.download(x.address, count: n, as: Float.self), summed = try device.download(y.address, count: n, as: Float.self)
        var wrong = 0
        for i in 0..<n {
            if !same(single[i], Swift.max(values[i], 0)) { wrong += 1 }
            if !same(summed[i], Swift.max(values[i] + shifts[i], 0)) { wrong += 1 }
        }
        return .init(name: "ReLU outputs differing from the CPU's on NaN, ±0, ±∞ (of \(2 * n))", value: Double(wrong), limit: 1)
    }

    /// softmax_cross_entropy's prediction and loss against CrossEntropy.forward on rows with
    /// NaN logits (first, middle, all) and ordinary rows: the same prediction, and a loss that is
    /// NaN exactly where the CPU's is.
    static func argmax(_ device: CUDADevice) throws(GPUError) -> GPUParity.Check {
        let rows: [[Float]] = [[.nan, 1, 3], [2, .nan, 1], [.nan, .nan, .nan], [-.infinity, -1, .nan], [0.5, 0.25, 0.5], [1, 2, 3]]
        let n = rows.count, k = 3
        let labels: [Int32] = [2, 0, 1, 1, 0, 2]
        let logits = try buffer(device, rows.flatMap { $0 })
        let labelBuffer = try device.allocate(bytes: 4 * n)
        try device.upload(labels, to: labelBuffer.address)
        let loss = try device.allocate(bytes: 4 * n), correct = try device.allocate(bytes: 4 * n)
        try launch(device, "softmax_cross_entropy", elements: n, [.pointer(logits.address), .pointer(labelBuffer.address), .int(n), .int(k),
                                                                  .pointer(0), .pointer(loss.address), .pointer(correct.address)])
        let gpuLoss = try device.download(loss.address, count: n, as: Float.self)
        let gpuCorrect = try device.download(correct.address, count: n, as: Int32.self)
        var wrong = 0
        let cpu = CrossEntropy()
        for (i, row) in rows.enumerated() {
            var classMajor = row  // one image: [classes, 1] is the row itself
            let result = classMajor.withUnsafeMutableBufferPointer { values in
                [labels[i]].withUnsafeBufferPointer { cpu.forward(FeatureMap(data: values.baseAddress!, channels: k, batch: 1, height: 1, width: 1), labels: $0) }
            }
            if Int(gpuCorrect[i]) != result.correct { wrong += 1 }
            // The device's double exp and log may differ from glibc's in the last bit: the loss
            // must be NaN on both or close on both.
            let cpuLoss = Float(result.loss)
            if gpuLoss[i].isNaN != cpuLoss.isNaN || (!cpuLoss.isNaN && abs(gpuLoss[i] - cpuLoss) > 1e-6 * Swift.max(1, abs(cpuLoss))) { wrong += 1 }
        }
        return .init(name: "argmax and loss differing from the CPU's on NaN logits (of \(2 * n))", value: Double(wrong), limit: 1)
    }

    /// sgd_update against SGD.step over three steps (the first initialises the momentum),
    /// plain and Nesterov, with a mask: weights and momenta must be the same bits.
    static func sgd(_ device: CUDADevice) throws(GPUError) -> [GPUParity.Check] {
        let n = 4099
        var checks: [GPUParity.Check] = []
        for nesterov in [false, true] {
            var random = RandomStream(seed: 5, stream: .synthetic)
            let optimizer = SGD(momentum: 0.9, weightDecay: 5e-4, nesterov: nesterov)
            let parameter = Parameter(name: "w", shape: [n], prunable: true)
            let mask = Tensor(shape: [n])
            for i in 0..<n {
                parameter.value[i] = random.nextUnitFloat() * 2 - 1
                mask[i] = i % 5 == 0 ? 0 : 1
            }
            do { try parameter.setMask(mask) } catch { throw .invalid("\(error)") }
            let rates: [Float] = [0.1, 0.0375, 0.0123]
            let w = try buffer(device, parameter.value.array), g = try device.allocate(bytes: 4 * n), momentum = try device.allocate(bytes: 4 * n)
            let masks = try buffer(device, mask.array), step = try device.allocate(bytes: 4)
            let schedule = try buffer(device, rates.enumerated().flatMap { [$0.element, $0.offset == 0 ? 1 : 0] })
            for (index, rate) in rates.enumerated() {
                for i in 0..<n { parameter.gradient[i] = (random.nextUnitFloat() - 0.5) * 0.02 }
                try device.upload(parameter.gradient.array, to: g.address)
                try launch(device, "sgd_update", elements: n, [.pointer(w.address), .pointer(g.address), .pointer(momentum.address), .pointer(masks.address),
                                                               .pointer(schedule.address), .pointer(step.address), .int(n), .float(optimizer.momentum),
                                                               .float(optimizer.weightDecay), .int(nesterov ? 1 : 0)])
                try launch(device, "advance", elements: 1, [.pointer(step.address)])
                optimizer.step([parameter], learningRate: rate, firstStep: index == 0)
            }
            let gpuWeights = try device.download(w.address, count: n, as: Float.self), gpuMomenta = try device.download(momentum.address, count: n, as: Float.self)
            var wrong = 0
            for i in 0..<n where gpuWeights[i].bitPattern != parameter.value[i].bitPattern || gpuMomenta[i].bitPattern != parameter.momentum[i].bitPattern {
                wrong += 1
            }
            checks.append(.init(name: "SGD\(nesterov ? " (Nesterov)" : "") elements not bit-identical to the CPU's after 3 masked steps (of \(n))",
                                value: Double(wrong), limit: 1))
        }
        return checks
    }
}
