import Foundation

/// Decides, per kind of product, whether OpenBLAS or oneDNN computes it on this CPU.
///
/// Neither engine wins everywhere: on an AMD EPYC (Zen, AVX2) OpenBLAS is ahead on the
/// forward products and oneDNN on the transposed ones by 5–15%, and on Intel server CPUs
/// OpenBLAS 0.3.21 has no good AVX-512 single-precision kernel while oneDNN generates one.
/// So each kind is timed on both engines with the network's own convolution shapes, once per
/// CPU model, BLAS core, oneDNN version and thread count; the answer is kept in a cache file.
/// oneDNN must win by `requiredMargin`: on the AMD EPYC its 5–15% lead on single products
/// did not survive a whole training step (OpenBLAS alone 31.5 images/s, mixed 31.0, oneDNN
/// alone 29.1; medians of three rounds), and it costs a second thread pool and ~100 MiB.
/// `PRUNESWEEP_GEMM_ENGINE=openblas` or `=onednn` overrides the measurement.
public enum GEMMEngineSelection {
    /// The override: `openblas`, `onednn` or `auto` (the default).
    public static let variable = "PRUNESWEEP_GEMM_ENGINE"
    /// The kinds training performs; `tt` never occurs and stays on OpenBLAS.
    static let measuredKinds: [BLAS.Kind] = [.nn, .tn, .nt]
    /// How much faster than OpenBLAS oneDNN must be on a kind to compute it.
    public static let requiredMargin = 1.2

    /// One kind's measurement: GFLOP/s on each engine and the one chosen.
    public struct Measurement: Codable, Equatable, Sendable {
        public var kind: BLAS.Kind
        public var openBLAS: Double
        public var oneDNN: Double
        public var chosen: BLAS.Engine { oneDNN >= requiredMargin * openBLAS ? .oneDNN : .openBLAS }
    }

    /// Routes every kind of product and returns the log line that says where each goes and why;
    /// `remeasure` ignores a cached measurement.
    public static func choose(threads: Int, remeasure: Bool = false) -> String {
        let request = ProcessInfo.processInfo.environment[variable]?.lowercased() ?? "auto"
        guard let oneDNN = OneDNN.shared else {
            for kind in BLAS.Kind.allCases { BLAS.route(kind, to: .openBLAS) }
            let why = request == BLAS.Engine.openBLAS.rawValue ? "\(variable)=openblas" : "oneDNN is not installed (libdnnl.so.2 or .so.3)"
            return "GEMM: OpenBLAS for every product (\(why))"
        }
        if let engine = BLAS.Engine(rawValue: request) {
            for kind in measuredKinds { BLAS.route(kind, to: engine) }
            return "GEMM: \(engine == .oneDNN ? oneDNN.description : "OpenBLAS") for every product (\(variable)=\(request))"
        }
        let error = BLASCheck.maximumError(m: 37, n: 53, k: 29, engine: .oneDNN)
        guard error < 1e-4 else {
            for kind in BLAS.Kind.allCases { BLAS.route(kind, to: .openBLAS) }
            return "GEMM: OpenBLAS for every product (\(oneDNN.description) computed a wrong product: relative error \(error))"
        }
        let unknown = request == "auto" ? "" : "; \(variable)=\(request) is not openblas, onednn or auto, so it was ignored"
        let url = cacheURL(oneDNN: oneDNN, threads: threads)
        // The slots of a host start together: one measures, the others wait and read its answer,
        // so they all route alike and a task resumed on another slot stays bit-identical.
        let measured = try? FileLock.withLock(url.appendingPathExtension("lock")) {
            (remeasure ? nil : cached(at: url)) ?? measure(saveTo: url)
        }
        let measurements = measured ?? measure()
        for measurement in measurements { BLAS.route(measurement.kind, to: measurement.chosen) }
        let table = measurements.map {
            "\($0.kind) \($0.chosen == .oneDNN ? "oneDNN" : "OpenBLAS") (\(Int($0.openBLAS.rounded())) vs \(Int($0.oneDNN.rounded())))"
        }.joined(separator: ", ")
        return "GEMM: \(table) GFLOP/s OpenBLAS vs \(oneDNN.description), \(threads) thread(s), measured on conv shapes; oneDNN where ≥ \(requiredMargin)× faster\(unknown)"
    }

    /// Times every measured kind on both engines (about 4 seconds).
    public static func measure() -> [Measurement] {
        measuredKinds.map { kind in
            Measurement(kind: kind, openBLAS: rate(kind, on: .openBLAS), oneDNN: rate(kind, on: .oneDNN))
        }
    }

    /// GFLOP/s of `kind` on `engine` over the convolution shapes of ResNet18's four stages,
    /// each product laid out as the convolution lays it out.
    static func rate(_ kind: BLAS.Kind, on engine: BLAS.Engine) -> Double {
        var flops = 0.0, seconds = 0.0
        for (outChannels, positions, rows) in BLASCoreSelection.probeShapes {
            let (m, n, k): (Int, Int, Int)
            switch kind {
            case .nn: (m, n, k) = (outChannels, positions, rows)
            case .tn: (m, n, k) = (rows, positions, outChannels)
            case .nt, .tt: (m, n, k) = (outChannels, rows, positions)
            }
            let (transA, transB) = kind.transposes
            let rate = Benchmark.gemmRate(m: m, n: n, k: k, transA: transA, transB: transB, engine: engine, minimumSeconds: 0.15)
            let product = 2 * Double(m) * Double(n) * Double(k)
            flops += product
            seconds += product / rate
        }
        return flops / seconds
    }

    private static func measure(saveTo url: URL) -> [Measurement] {
        let measurements = measure()
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? JSONEncoder().encode(measurements).write(to: url, options: .atomic)
        return measurements
    }

    private static func cached(at url: URL) -> [Measurement]? {
        guard let data = try? Data(contentsOf: url),
              let measurements = try? JSONDecoder().decode([Measurement].self, from: data),
              Set(measurements.map(\.kind)) == Set(measuredKinds) else { return nil }
        return measurements
    }

    private static func cacheURL(oneDNN: OneDNN, threads: Int) -> URL {
        UserCache.file("gemm-engines", key: [BLASCoreSelection.cpuModel, BLAS.configuration, BLAS.coreName, oneDNN.description, String(threads)])
    }
}

extension BLAS.Kind {
    /// The operands' transposes that make this kind.
    var transposes: (BLAS.Transpose, BLAS.Transpose) {
        switch self {
        case .nn: (.none, .none)
        case .tn: (.transpose, .none)
        case .nt: (.none, .transpose)
        case .tt: (.transpose, .transpose)
        }
    }
}
