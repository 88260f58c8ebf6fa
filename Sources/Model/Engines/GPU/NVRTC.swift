import Crypto
import Foundation

/// NVRTC, CUDA's run-time compiler (`libnvrtc.so.13` or `.12`): turns the kernels' CUDA C into
/// a cubin for the device's own architecture, cached on disk by the hash of source,
/// architecture and compiler version so a host compiles each kernel set once.
public final class NVRTC: @unchecked Sendable {
    typealias Status = Int32
    typealias Program = OpaquePointer?

    private let library: DynamicLibrary
    private let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Status
    private let nvrtcCreateProgram: @convention(c) (UnsafeMutablePointer<Program>, UnsafePointer<CChar>, UnsafePointer<CChar>, Int32,
                                                    UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
    private let nvrtcCompileProgram: @convention(c) (Program, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
    private let nvrtcGetProgramLogSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Status
    private let nvrtcGetProgramLog: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Status
    private let nvrtcGetCUBINSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Status
    private let nvrtcGetCUBIN: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Status
    private let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program>) -> Status
    private let nvrtcGetErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?

    /// The compiler's version, e.g. "13.0".
    public let version: String
    /// The library that was opened.
    public var loadedName: String { library.loadedName }
    /// The file NVRTC was loaded from (`DynamicLibrary.origin`).
    public var origin: String { library.origin }

    /// Opens NVRTC, newest major version first.
    public init() throws(GPUError) {
        library = try DynamicLibrary("NVRTC", sonames: ["libnvrtc.so.13", "libnvrtc.so.12"], pythonWheels: true)
        nvrtcVersion = try library.function("nvrtcVersion")
        nvrtcCreateProgram = try library.function("nvrtcCreateProgram")
        nvrtcCompileProgram = try library.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try library.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try library.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.function("nvrtcGetCUBIN")
        nvrtcDestroyProgram = try library.function("nvrtcDestroyProgram")
        nvrtcGetErrorString = try library.function("nvrtcGetErrorString")
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtcVersion(&major, &minor)
        version = "\(major).\(minor)"
    }

    /// Compiles `source` to a cubin for `architecture` (e.g. "sm_90"); the error carries the
    /// compiler log.
    public func compile(_ source: String, name: String, architecture: String) throws(GPUError) -> [UInt8] {
        var program: Program = nil
        try check(nvrtcCreateProgram(&program, source, name, 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = nvrtcDestroyProgram(&program) }
        let options = ["--gpu-architecture=\(architecture)", "--std=c++17"]
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { nvrtcCompileProgram(program, Int32(options.count), $0.baseAddress) }
        guard status == 0 else { throw .compile(architecture: architecture, log: log(of: program)) }
        var size = 0
        try check(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize")
        var cubin = [CChar](repeating: 0, count: size)
        try check(nvrtcGetCUBIN(program, &cubin), "nvrtcGetCUBIN")
        return cubin.map { UInt8(bitPattern: $0) }
    }

    /// The cubin of `source` for `architecture`, from the disk cache or compiled and stored.
    public func cachedCompile(_ source: String, name: String, architecture: String,
                              cache: URL = NVRTC.defaultCacheDirectory) throws(GPUError) -> (cubin: [UInt8], cached: Bool) {
        let key = SHA256.hash(data: Data("\(source)\u{0}\(architecture)\u{0}\(version)".utf8)).map { String(format: "%02x", $0) }.joined()
        let file = cache.appendingPathComponent("\(name)-\(architecture)-\(key.prefix(16)).cubin")
        if let data = try? Data(contentsOf: file), !data.isEmpty { return ([UInt8](data), true) }
        let cubin = try compile(source, name: name, architecture: architecture)
        // A cache that cannot be written only costs a compile next time.
        try? FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        try? Data(cubin).write(to: file, options: .atomic)
        return (cubin, false)
    }

    /// `~/.cache/prunesweep/kernels` (`UserCache`).
    public static var defaultCacheDirectory: URL { UserCache.directory.appendingPathComponent("kernels") }

    private func log(of program: Program) -> String {
        var size = 0
        guard nvrtcGetProgramLogSize(program, &size) == 0, size > 1 else { return "(no log)" }
        var text = [CChar](repeating: 0, count: size)
        _ = nvrtcGetProgramLog(program, &text)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func check(_ status: Status, _ function: String) throws(GPUError) {
        guard status != 0 else { return }
        let message = nvrtcGetErrorString(status).map { String(cString: $0) } ?? "unknown error"
        throw .call(api: "NVRTC", function: function, status: status, message: message)
    }
}
