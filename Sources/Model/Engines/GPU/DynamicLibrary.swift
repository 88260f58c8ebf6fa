import Foundation

/// A shared library opened at run time by soname, so the package builds and runs on machines
/// without CUDA and a GPU host needs no library at build time.
///
/// Where it looks, in order (each directory tries the names newest first, `libcublas.so.13`
/// then `.so.12`):
/// 1. the dynamic loader's own search (`LD_LIBRARY_PATH`, the ld.so cache, the system directories);
/// 2. the directories of `PRUNESWEEP_CUDA_LIBRARY_PATH` (colon-separated);
/// 3. for the CUDA libraries PyTorch users have as wheels (`pythonWheels`), the wheels'
///    directories under every site directory of `python3` (or `PRUNESWEEP_PYTHON`):
///    `nvidia/cu13/lib` (CUDA 13 wheels), `nvidia/cudnn/lib`, `nvidia/cublas/lib`,
///    `nvidia/cuda_nvrtc/lib` (CUDA 12 wheels, and cuDNN for both), `nvidia/cu12/lib`, `torch/lib`.
public final class DynamicLibrary: @unchecked Sendable {
    /// The environment variable naming extra directories (colon-separated) to look in.
    public static let searchPathVariable = "PRUNESWEEP_CUDA_LIBRARY_PATH"
    /// The environment variable naming the Python whose site directories hold the wheels.
    public static let pythonVariable = "PRUNESWEEP_PYTHON"
    /// Library directories of NVIDIA's and PyTorch's wheels, relative to a site directory.
    public static let wheelDirectories = ["nvidia/cu13/lib", "nvidia/cudnn/lib", "nvidia/cublas/lib", "nvidia/cuda_nvrtc/lib", "nvidia/cu12/lib", "torch/lib"]

    /// What the library is, for messages ("cuDNN").
    public let label: String
    /// The file or soname that opened.
    public let loadedName: String
    /// The file that was mapped (found in `/proc/self/maps` when the loader found a soname).
    public let path: String?
    private let handle: UnsafeMutableRawPointer

    /// Where the library came from, for logs and results: its file, else the name that opened.
    public var origin: String { path ?? loadedName }

    /// Opens the first of `sonames` that loads; every failure is collected into one error.
    /// `pythonWheels` adds the wheel directories of the local Python (asked only when the
    /// loader and `PRUNESWEEP_CUDA_LIBRARY_PATH` did not have the library).
    public init(_ label: String, sonames: [String], pythonWheels: Bool = false) throws(GPUError) {
        self.label = label
        let directories = (ProcessInfo.processInfo.environment[Self.searchPathVariable] ?? "")
            .split(separator: ":").map(String.init).filter { !$0.isEmpty }
        var tried = sonames + directories.flatMap { directory in sonames.map { directory + "/" + $0 } }
        for name in tried {
            if let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                self.handle = handle
                loadedName = name
                path = Self.mappedFile(name)
                return
            }
        }
        if pythonWheels {
            let files = Self.wheelCandidates(sonames: sonames, siteDirectories: Self.pythonSiteDirectories)
            for file in files {
                if let handle = dlopen(file, RTLD_NOW | RTLD_GLOBAL) {
                    self.handle = handle
                    loadedName = file
                    path = file
                    return
                }
            }
            tried += files.isEmpty ? ["Python wheels (\(Self.pythonSiteDirectories.count) site directories, none has it)"] : files
        }
        throw .libraryMissing(library: "\(label) (\(sonames.first ?? label))", tried: tried)
    }

    /// The address of `symbol`, cast to the C function type `T`.
    public func function<T>(_ symbol: String, as type: T.Type = T.self) throws(GPUError) -> T {
        guard let address = dlsym(handle, symbol) else { throw .symbolMissing(symbol: symbol, library: loadedName) }
        return unsafeBitCast(address, to: T.self)
    }

    /// The existing files among `sonames` in the wheel directories of `siteDirectories`, in
    /// search order: site directory by site directory, wheel directory by wheel directory,
    /// newest soname first.
    static func wheelCandidates(sonames: [String], siteDirectories: [String]) -> [String] {
        var files: [String] = []
        for site in siteDirectories {
            for directory in wheelDirectories {
                for soname in sonames {
                    let file = site + "/" + directory + "/" + soname
                    if FileManager.default.fileExists(atPath: file) && !files.contains(file) { files.append(file) }
                }
            }
        }
        return files
    }

    /// The site directories of `python3` (or `$PRUNESWEEP_PYTHON`): `site.getsitepackages()`,
    /// the user site and `sys.path`, without repeats; empty without a Python. Asked once per
    /// process, and only when a library was not found otherwise.
    static let pythonSiteDirectories: [String] = {
        let python = ProcessInfo.processInfo.environment[pythonVariable] ?? "python3"
        let script = "import os, site, sys\n"
            + "paths = list(getattr(site, 'getsitepackages', lambda: [])()) + [site.getusersitepackages()] + sys.path\n"
            + "print('\\n'.join(p for p in dict.fromkeys(paths) if p and os.path.isdir(p)))"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", script]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return [] }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return [] }
        return parseSiteDirectories(String(decoding: output, as: UTF8.self))
    }()

    /// The lines of the site-directory script's output that are absolute paths.
    static func parseSiteDirectories(_ output: String) -> [String] {
        output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("/") }
    }

    /// The file mapped for `name`: `name` itself when it is a path, else the first file in
    /// `maps` (`/proc/self/maps`' text) whose name starts with the soname
    /// (`libcudnn.so.9` → `…/libcudnn.so.9.14.0`).
    static func mappedFile(_ name: String, maps: String? = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)) -> String? {
        if name.contains("/") { return name }
        for line in (maps ?? "").split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let file = String(line[slash...])
            if (file as NSString).lastPathComponent.hasPrefix(name) { return file }
        }
        return nil
    }
}
