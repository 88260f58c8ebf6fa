/// Everything that can go wrong on the CUDA path, each case worded so the line alone tells a
/// user what is missing or broken and what to do.
public enum GPUError: Error, Equatable, CustomStringConvertible {
    /// A shared library could not be opened under any of its names.
    case libraryMissing(library: String, tried: [String])
    /// A library opened but lacks a function this program calls (too old a version).
    case symbolMissing(symbol: String, library: String)
    /// A library opened but cannot do its work (cuDNN without its engine sub-libraries).
    case libraryBroken(library: String, why: String)
    /// A CUDA, cuDNN, cuBLAS or NVRTC call returned an error status.
    case call(api: String, function: String, status: Int32, message: String)
    /// NVRTC refused a kernel source; `log` is its compiler output.
    case compile(architecture: String, log: String)
    /// The driver loaded but there is no usable device (or not the one asked for).
    case noDevice(String)
    /// Anything else the GPU path cannot do with the given inputs.
    case invalid(String)

    public var description: String {
        switch self {
        case .libraryMissing(let library, let tried):
            "\(library) not found (tried \(tried.joined(separator: ", "))): install it, or name its directory in \(DynamicLibrary.searchPathVariable), or use --device cpu"
        case .libraryBroken(let library, let why):
            "\(library) is unusable: \(why); or use --device cpu"
        case .symbolMissing(let symbol, let library):
            "\(library) has no function \(symbol): this library version is too old for PruneSweep; install a newer one"
        case .call(let api, let function, let status, let message):
            "\(api) call \(function) failed with status \(status) (\(message))"
        case .compile(let architecture, let log):
            "NVRTC could not compile the kernels for \(architecture):\n\(log)"
        case .noDevice(let why): why
        case .invalid(let why): why
        }
    }
}
