/// The CUDA driver API (`libcuda.so.1`), the functions PruneSweep calls, declared from the
/// public documentation. Handles are opaque pointers; device addresses are `UInt64`.
public final class CUDADriver: @unchecked Sendable {
    typealias Status = Int32
    typealias Handle = OpaquePointer?

    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> Status
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Status
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Status
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Status
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<Handle>, Int32) -> Status
    let cuCtxSetCurrent: @convention(c) (Handle) -> Status
    let cuCtxPushCurrent: @convention(c) (Handle) -> Status
    let cuCtxPopCurrent: @convention(c) (UnsafeMutablePointer<Handle>) -> Status
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> Status
    let cuMemFree: @convention(c) (UInt64) -> Status
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Status
    let cuMemcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer, Int, Handle) -> Status
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer, UInt64, Int, Handle) -> Status
    let cuMemcpyDtoDAsync: @convention(c) (UInt64, UInt64, Int, Handle) -> Status
    let cuMemsetD32Async: @convention(c) (UInt64, UInt32, Int, Handle) -> Status
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<Handle>, UInt32) -> Status
    let cuStreamSynchronize: @convention(c) (Handle) -> Status
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<Handle>, UnsafeRawPointer) -> Status
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<Handle>, Handle, UnsafePointer<CChar>) -> Status
    let cuLaunchKernel: @convention(c) (Handle, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, Handle,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Status
    let cuGetErrorString: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<Handle>, UInt32) -> Status
    let cuEventDestroy: @convention(c) (Handle) -> Status
    let cuEventRecord: @convention(c) (Handle, Handle) -> Status
    let cuEventSynchronize: @convention(c) (Handle) -> Status
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, Handle, Handle) -> Status
    let cuStreamBeginCapture: @convention(c) (Handle, Int32) -> Status
    let cuStreamEndCapture: @convention(c) (Handle, UnsafeMutablePointer<Handle>) -> Status
    let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<Handle>, Handle, UInt64) -> Status
    let cuGraphLaunch: @convention(c) (Handle, Handle) -> Status
    let cuGraphDestroy: @convention(c) (Handle) -> Status
    let cuGraphExecDestroy: @convention(c) (Handle) -> Status

    /// Device attributes used (CUdevice_attribute values).
    enum Attribute: Int32 {
        case multiprocessors = 16, computeMajor = 75, computeMinor = 76
    }

    /// Opens `libcuda.so.1` (the driver has had one soname for every CUDA version).
    init() throws(GPUError) {
        let library = try DynamicLibrary("the NVIDIA driver", sonames: ["libcuda.so.1", "libcuda.so"])
        self.library = library
        cuInit = try library.function("cuInit")
        cuDriverGetVersion = try library.function("cuDriverGetVersion")
        cuDeviceGetCount = try library.function("cuDeviceGetCount")
        cuDeviceGet = try library.function("cuDeviceGet")
        cuDeviceGetName = try library.function("cuDeviceGetName")
        cuDeviceGetAttribute = try library.function("cuDeviceGetAttribute")
        cuDevicePrimaryCtxRetain = try library.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try library.function("cuCtxSetCurrent")
        cuCtxPushCurrent = try library.function("cuCtxPushCurrent_v2")
        cuCtxPopCurrent = try library.function("cuCtxPopCurrent_v2")
        cuMemAlloc = try library.function("cuMemAlloc_v2")
        cuMemFree = try library.function("cuMemFree_v2")
        cuMemGetInfo = try library.function("cuMemGetInfo_v2")
        cuMemcpyHtoDAsync = try library.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try library.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try library.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD32Async = try library.function("cuMemsetD32Async")
        cuStreamCreate = try library.function("cuStreamCreate")
        cuStreamSynchronize = try library.function("cuStreamSynchronize")
        cuModuleLoadData = try library.function("cuModuleLoadData")
        cuModuleGetFunction = try library.function("cuModuleGetFunction")
        cuLaunchKernel = try library.function("cuLaunchKernel")
        cuGetErrorString = try library.function("cuGetErrorString")
        cuEventCreate = try library.function("cuEventCreate")
        cuEventDestroy = try library.function("cuEventDestroy_v2")
        cuEventRecord = try library.function("cuEventRecord")
        cuEventSynchronize = try library.function("cuEventSynchronize")
        // CUDA 12.8 added the _v2 entry point and CUDA 13 headers call it; older drivers only have the first.
        do { cuEventElapsedTime = try library.function("cuEventElapsedTime_v2") } catch {
            cuEventElapsedTime = try library.function("cuEventElapsedTime")
        }
        cuStreamBeginCapture = try library.function("cuStreamBeginCapture_v2")
        cuStreamEndCapture = try library.function("cuStreamEndCapture")
        cuGraphInstantiateWithFlags = try library.function("cuGraphInstantiateWithFlags")
        cuGraphLaunch = try library.function("cuGraphLaunch")
        cuGraphDestroy = try library.function("cuGraphDestroy")
        cuGraphExecDestroy = try library.function("cuGraphExecDestroy")
    }

    /// Runs `body` with `context` current on this thread and restores what was current before.
    /// For releases in `deinit`, which may run on any thread (one where no context, or another
    /// device's, is current); a failure there cannot be reported and is ignored.
    func releasing(in context: Handle, _ body: () -> Void) {
        let pushed = cuCtxPushCurrent(context) == 0
        body()
        var previous: Handle = nil
        if pushed { _ = cuCtxPopCurrent(&previous) }
    }

    /// Throws when a driver call did not return CUDA_SUCCESS, with the driver's own words.
    func check(_ status: Status, _ function: String) throws(GPUError) {
        guard status != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorString(status, &text)
        throw .call(api: "CUDA driver", function: function, status: status, message: text.map { String(cString: $0) } ?? "unknown error")
    }
}
