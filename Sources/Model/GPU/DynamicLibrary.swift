import Foundation

/// A shared library opened at run time by soname, so the package builds and runs on machines
/// without CUDA and a GPU host needs no library at build time.
///
/// Names are tried newest first (`libcublas.so.13`, then `.so.12`) through the dynamic
/// loader's own search, then as files in the directories of `PRUNESWEEP_CUDA_LIBRARY_PATH`.
public final class DynamicLibrary: @unchecked Sendable {
    /// The environment variable naming extra directories (colon-separated) to look in.
    public static let searchPathVariable = "PRUNESWEEP_CUDA_LIBRARY_PATH"

    /// What the library is, for messages ("cuDNN").
    public let label: String
    /// The file or soname that opened.
    public let loadedName: String
    private let handle: UnsafeMutableRawPointer

    /// Opens the first of `sonames` that loads; every failure is collected into one error.
    public init(_ label: String, sonames: [String]) throws(GPUError) {
        self.label = label
        let directories = (ProcessInfo.processInfo.environment[Self.searchPathVariable] ?? "")
            .split(separator: ":").map(String.init).filter { !$0.isEmpty }
        let candidates = sonames + directories.flatMap { directory in sonames.map { directory + "/" + $0 } }
        for name in candidates {
            if let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                self.handle = handle
                loadedName = name
                return
            }
        }
        throw .libraryMissing(library: "\(label) (\(sonames.first ?? label))", tried: candidates)
    }

    /// The address of `symbol`, cast to the C function type `T`.
    public func function<T>(_ symbol: String, as type: T.Type = T.self) throws(GPUError) -> T {
        guard let address = dlsym(handle, symbol) else { throw .symbolMissing(symbol: symbol, library: loadedName) }
        return unsafeBitCast(address, to: T.self)
    }
}
