/// Where a GPU step's time goes: CUDA events recorded around every library call (cuDNN,
/// cuBLAS) and every PruneSweep kernel of an eagerly launched step, summed per category once
/// the step has finished. Profiling adds event records between launches, so it is used on a
/// separate step from the timed ones.
final class GPUProfile {
    private let device: CUDADevice
    /// Who ran a piece of the step.
    enum Category: String, CaseIterable {
        case libraries = "cuDNN/cuBLAS", ownKernels = "own kernels"
    }

    private var spans: [(Category, OpaquePointer?, OpaquePointer?)] = []
    private var pool: [OpaquePointer?] = []
    private var used = 0

    /// A profile of steps on `device`.
    init(device: CUDADevice) { self.device = device }

    deinit {
        let driver = device.driver, events = pool
        device.releasing { for event in events { _ = driver.cuEventDestroy(event) } }
    }

    /// Records events before and after `body`'s launches.
    func time(_ category: Category, _ body: () throws(GPUError) -> Void) throws(GPUError) {
        let start = try event(), end = try event()
        try device.driver.check(device.driver.cuEventRecord(start, device.stream), "cuEventRecord")
        try body()
        try device.driver.check(device.driver.cuEventRecord(end, device.stream), "cuEventRecord")
        spans.append((category, start, end))
    }

    /// Milliseconds per category of everything recorded since the last call; waits for the GPU.
    func collect() throws(GPUError) -> [Category: Double] {
        try device.synchronize()
        var totals: [Category: Double] = [:]
        for (category, start, end) in spans {
            var milliseconds: Float = 0
            try device.driver.check(device.driver.cuEventElapsedTime(&milliseconds, start, end), "cuEventElapsedTime")
            totals[category, default: 0] += Double(milliseconds)
        }
        spans.removeAll()
        used = 0
        return totals
    }

    private func event() throws(GPUError) -> OpaquePointer? {
        if used == pool.count {
            var event: OpaquePointer?
            try device.driver.check(device.driver.cuEventCreate(&event, 0), "cuEventCreate")
            pool.append(event)
        }
        used += 1
        return pool[used - 1]
    }
}
