/// PruneSweep's own kernels (`KernelSource`) loaded from their cubin, each with a typed
/// launcher beside it. Launches are queued on the device's stream and never synchronise, so a
/// whole training step can be captured into one CUDA graph.
final class GPUKernels {
    /// One kernel argument, stored by value for `cuLaunchKernel`.
    enum Argument {
        case pointer(UInt64), int(Int), float(Float)
    }

    private let driver: CUDADriver
    private let module: OpaquePointer?
    private var functions: [String: OpaquePointer?] = [:]
    private static let threadsPerBlock = 256

    init(driver: CUDADriver, cubin: [UInt8]) throws(GPUError) {
        self.driver = driver
        guard !cubin.isEmpty else { throw .invalid("NVRTC returned an empty cubin") }
        var module: OpaquePointer?
        let status = cubin.withUnsafeBytes { raw in driver.cuModuleLoadData(&module, raw.baseAddress!) }
        try driver.check(status, "cuModuleLoadData")
        self.module = module
        for name in KernelSource.names {
            var function: OpaquePointer?
            try driver.check(driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
            functions[name] = function
        }
    }

    /// Launches `name` on `stream` with enough 256-thread blocks to cover `elements` threads
    /// (`blocks` overrides the grid for single-block kernels).
    func launch(_ name: String, elements: Int, blocks: Int? = nil, stream: OpaquePointer?, _ arguments: [Argument]) throws(GPUError) {
        guard let function = functions[name] ?? nil else { throw .invalid("kernel \(name) is not in the compiled module") }
        let grid = blocks ?? Swift.max(1, (elements + Self.threadsPerBlock - 1) / Self.threadsPerBlock)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 8 * Swift.max(arguments.count, 1), alignment: 8)
        defer { storage.deallocate() }
        var pointers: [UnsafeMutableRawPointer?] = []
        for (index, argument) in arguments.enumerated() {
            let slot = storage + 8 * index
            switch argument {
            case .pointer(let address): slot.storeBytes(of: address, as: UInt64.self)
            case .int(let value): slot.storeBytes(of: Int32(value), as: Int32.self)
            case .float(let value): slot.storeBytes(of: value, as: Float.self)
            }
            pointers.append(slot)
        }
        let status = pointers.withUnsafeMutableBufferPointer { buffer in
            driver.cuLaunchKernel(function, UInt32(grid), 1, 1, UInt32(Self.threadsPerBlock), 1, 1, 0, stream, buffer.baseAddress, nil)
        }
        try driver.check(status, "cuLaunchKernel(\(name))")
    }
}
