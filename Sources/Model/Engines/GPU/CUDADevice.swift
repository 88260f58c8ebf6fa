import Foundation
import Logging

/// One CUDA device with everything the trainer needs on it: the primary context, one stream,
/// cuDNN and cuBLAS handles bound to that stream, and PruneSweep's kernels compiled for its
/// architecture. All CUDA calls of the package go through this object and the types beside it.
public final class CUDADevice: @unchecked Sendable {
    let driver: CUDADriver
    let cudnn: CUDNN
    let cublas: CUBLAS
    let nvrtc: NVRTC
    let stream: OpaquePointer?
    let cudnnHandle: OpaquePointer?
    let cublasHandle: OpaquePointer?
    let kernels: GPUKernels
    /// What the device is, for logs, `hello` and results.
    public let info: Info
    /// Where the GPU path reports: chosen convolution algorithms at debug level, a failed
    /// graph capture at warning level. A worker sets its own logger here before training.
    public var logger = Logger(label: "prunesweep.gpu")

    /// The device's identity and the libraries found for it.
    public struct Info: Codable, Equatable, Sendable {
        /// CUDA ordinal, name (e.g. "NVIDIA H200") and compute capability ("9.0").
        public var index: Int, name: String, computeCapability: String
        /// Streaming multiprocessors and memory in bytes.
        public var multiprocessors: Int, memoryBytes: Int
        /// Driver API version ("13.0"), cuDNN ("9.14.0"), NVRTC ("13.0") and the libraries opened.
        public var driver: String, cudnn: String, nvrtc: String, libraries: [String]
        /// Whether the kernels came from the disk cache.
        public var kernelsCached: Bool

        /// "cuda:0 NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB), driver 13.0, cuDNN 9.14.0, NVRTC 13.0".
        public var summary: String {
            "cuda:\(index) \(name) (sm_\(computeCapability.replacingOccurrences(of: ".", with: "")), \(multiprocessors) SMs, "
                + String(format: "%.1f GiB", Double(memoryBytes) / 1_073_741_824)
                + "), driver \(driver), cuDNN \(cudnn), NVRTC \(nvrtc)\(kernelsCached ? "" : ", kernels compiled")"
        }
    }

    /// Opens device `index`: loads the driver, cuDNN, cuBLAS and NVRTC (in that order, so the
    /// error names the first one missing), creates the handles and compiles the kernels.
    public init(index: Int = 0) throws(GPUError) {
        let driver = try CUDADriver()
        try driver.check(driver.cuInit(0), "cuInit")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > 0 else { throw .noDevice("the NVIDIA driver reports no CUDA device; use --device cpu") }
        guard index >= 0, index < count else {
            throw .noDevice("cuda:\(index) does not exist: this host has \(count) CUDA device\(count == 1 ? "" : "s") (cuda:0…cuda:\(count - 1))")
        }
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(index)), "cuDeviceGet")
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        self.context = context
        cudnn = try CUDNN()
        cublas = try CUBLAS()
        nvrtc = try NVRTC()
        self.driver = driver

        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 255, device), "cuDeviceGetName")
        func attribute(_ a: CUDADriver.Attribute) throws(GPUError) -> Int {
            var value: Int32 = 0
            try driver.check(driver.cuDeviceGetAttribute(&value, a.rawValue, device), "cuDeviceGetAttribute")
            return Int(value)
        }
        let major = try attribute(.computeMajor), minor = try attribute(.computeMinor)
        var driverVersion: Int32 = 0
        try driver.check(driver.cuDriverGetVersion(&driverVersion), "cuDriverGetVersion")
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")

        var stream: OpaquePointer?
        try driver.check(driver.cuStreamCreate(&stream, 1), "cuStreamCreate")  // CU_STREAM_NON_BLOCKING
        self.stream = stream
        var cudnnHandle: OpaquePointer?
        try cudnn.check(cudnn.cudnnCreate(&cudnnHandle), "cudnnCreate")
        try cudnn.check(cudnn.cudnnSetStream(cudnnHandle, stream), "cudnnSetStream")
        self.cudnnHandle = cudnnHandle
        var cublasHandle: OpaquePointer?
        try cublas.check(cublas.cublasCreate(&cublasHandle), "cublasCreate_v2")
        try cublas.check(cublas.cublasSetStream(cublasHandle, stream), "cublasSetStream_v2")
        self.cublasHandle = cublasHandle
        // cuBLAS allocates its own workspace on first use unless given one, which a graph
        // capture forbids; 4 MiB is what its documentation suggests for Hopper.
        let workspace = try DeviceBuffer(device: driver, context: context, bytes: 4 << 20)
        try cublas.check(cublas.cublasSetWorkspace(cublasHandle, UnsafeMutableRawPointer(bitPattern: UInt(workspace.address)), workspace.bytes),
                         "cublasSetWorkspace_v2")
        cublasWorkspace = workspace
        try CUDNNProbe.run(cudnn: cudnn, handle: cudnnHandle, driver: driver, context: context, stream: stream)

        let architecture = "sm_\(major)\(minor)"
        let compiled = try nvrtc.cachedCompile(KernelSource.text, name: "prunesweep", architecture: architecture)
        kernels = try GPUKernels(driver: driver, cubin: compiled.cubin)
        let v = cudnn.version
        info = Info(index: index, name: String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), computeCapability: "\(major).\(minor)",
                    multiprocessors: try attribute(.multiprocessors), memoryBytes: total,
                    driver: "\(driverVersion / 1000).\(driverVersion % 1000 / 10)",
                    cudnn: "\(v / 10000).\(v % 10000 / 100).\(v % 100)", nvrtc: nvrtc.version,
                    libraries: [driver.library.origin, cudnn.library.origin, cublas.library.origin, nvrtc.origin],
                    kernelsCached: compiled.cached)
    }

    private let cublasWorkspace: DeviceBuffer
    private let context: OpaquePointer?

    /// Runs `body` (releases: frees, destroys) with this device's context current, restoring
    /// the thread's previous context after: `deinit` may run on any thread.
    func releasing(_ body: () -> Void) {
        driver.releasing(in: context, body)
    }

    /// Makes this device's context current on the calling thread: CUDA contexts are per
    /// thread, and a worker trains on a thread of its own.
    public func makeCurrent() throws(GPUError) {
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    /// Device memory in use now (all processes), in bytes.
    public func memoryInUse() throws(GPUError) -> Int {
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        return total - free
    }

    /// Waits until every call queued on the stream has finished.
    public func synchronize() throws(GPUError) {
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    /// Copies host bytes to the device (ordered on the stream).
    func upload(_ source: UnsafeRawPointer, bytes: Int, to target: UInt64) throws(GPUError) {
        guard bytes > 0 else { return }
        try driver.check(driver.cuMemcpyHtoDAsync(target, source, bytes, stream), "cuMemcpyHtoDAsync")
    }

    /// Copies an array to the device.
    func upload<T>(_ values: [T], to target: UInt64) throws(GPUError) {
        guard !values.isEmpty else { return }
        let status = values.withUnsafeBytes { raw in driver.cuMemcpyHtoDAsync(target, raw.baseAddress!, raw.count, stream) }
        try driver.check(status, "cuMemcpyHtoDAsync")
    }

    /// `count` values of type `T` copied from the device (waits for them).
    func download<T: Numeric>(_ source: UInt64, count: Int, as type: T.Type = T.self) throws(GPUError) -> [T] {
        var values = [T](repeating: 0, count: count)
        guard count > 0 else { return values }
        let status = values.withUnsafeMutableBytes { raw in driver.cuMemcpyDtoHAsync(raw.baseAddress!, source, raw.count, stream) }
        try driver.check(status, "cuMemcpyDtoHAsync")
        try synchronize()
        return values
    }

    /// Copies device bytes to the host and waits for them.
    func download(_ source: UInt64, bytes: Int, into target: UnsafeMutableRawPointer) throws(GPUError) {
        guard bytes > 0 else { return }
        try driver.check(driver.cuMemcpyDtoHAsync(target, source, bytes, stream), "cuMemcpyDtoHAsync")
        try synchronize()
    }

    /// Sets `count` 32-bit words at `target` to `pattern` (0 for zeros, Float(1).bitPattern for ones).
    func fill(_ target: UInt64, words count: Int, pattern: UInt32) throws(GPUError) {
        guard count > 0 else { return }
        try driver.check(driver.cuMemsetD32Async(target, pattern, count, stream), "cuMemsetD32Async")
    }

    /// A zeroed device allocation.
    func allocate(bytes: Int) throws(GPUError) -> DeviceBuffer {
        let buffer = try DeviceBuffer(device: driver, context: context, bytes: bytes)
        try fill(buffer.address, words: (bytes + 3) / 4, pattern: 0)
        return buffer
    }
}

/// Device memory owned by a Swift object: freed when the last reference goes.
final class DeviceBuffer {
    let address: UInt64
    let bytes: Int
    private let driver: CUDADriver
    private let context: OpaquePointer?

    init(device driver: CUDADriver, context: OpaquePointer?, bytes: Int) throws(GPUError) {
        var address: UInt64 = 0
        // cuMemAlloc refuses zero bytes; a one-word allocation keeps every address valid.
        try driver.check(driver.cuMemAlloc(&address, Swift.max(bytes, 4)), "cuMemAlloc (\(bytes) bytes)")
        self.address = address
        self.bytes = bytes
        self.driver = driver
        self.context = context
    }

    deinit {
        let address = address, driver = driver
        driver.releasing(in: context) { _ = driver.cuMemFree(address) }
    }

    /// The address `floats` 32-bit elements past the start.
    func offset(_ elements: Int) -> UInt64 { address + UInt64(elements * 4) }
}
