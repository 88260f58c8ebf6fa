import Foundation
import Synchronization

/// Decides, per kind of product, whether OpenBLAS or oneDNN computes it on this CPU.
///
/// Neither engine wins everywhere: on an AMD EPYC (Zen, AVX2) OpenBLAS is ahead on the
/// forward products and oneDNN on the transposed ones by 5–15%, and on Intel server CPUs
/// OpenBLAS 0.3.21 has no good AVX-512 single-precision kernel while oneDNN generates one.
/// So each kind is timed on both engines with the network's own convolution shapes, once per
/// CPU model, BLAS core, oneDNN version and thread count; the answer is kept in a cache file
/// (`MeasurementCache`), and a training whose own rate contradicts it drops it.
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

    /// How closely the two fastest timings of one engine on one kind must agree before the
    /// measurement is kept: a busy machine (a build beside it) gives scattered timings, and an
    /// answer measured then was kept forever (OpenBLAS 20 GFLOP/s busy, 130 idle).
    public static let agreement = 0.1
    /// Timings per engine and kind at most, when they keep disagreeing.
    static let maximumRepetitions = 4
    /// How far a training's own rate on a kind may stray from the cached one before the cache
    /// is dropped.
    public static let contradictionFactor = 2.0
    /// The smallest mean product (floating-point operations per call) a training's rate is
    /// compared at: the probe's products are 2.4 GFLOP, and much smaller ones (narrow networks,
    /// small batches) are slower for reasons no measurement on the probe would show.
    public static let comparableFlopsPerCall = 0.5e9

    /// What the cache file holds: the measurements and the conditions they were taken under.
    public struct Record: Codable, Equatable, Sendable {
        /// Every measured kind.
        public var measurements: [Measurement]
        /// When they were measured.
        public var measuredAt: Date
        /// The share of all CPUs' time that other processes used during the measurement (0…1).
        public var othersBusyShare: Double
        /// The engine rates' repetitions agreed within `agreement`.
        public var repetitionsAgreed: Bool

        /// "measured 3 h ago on an idle machine (other processes used 2% of the CPUs)".
        public func describe(now: Date = Date()) -> String {
            let age = now.timeIntervalSince(measuredAt)
            let when = age < 60 ? "just now" : "\(Self.duration(age)) ago"
            let idle = othersBusyShare < 0.1 ? "an idle machine" : "a busy machine"
            return "measured \(when) on \(idle) (other processes used \(Int((100 * othersBusyShare).rounded()))% of the CPUs)"
        }

        /// "A·B oneDNN (38 vs 57), …": each kind's engine and both rates, OpenBLAS first.
        var table: String {
            measurements.map {
                "\($0.kind) \($0.chosen == .oneDNN ? "oneDNN" : "OpenBLAS") (\(Int($0.openBLAS.rounded())) vs \(Int($0.oneDNN.rounded())))"
            }.joined(separator: ", ")
        }

        static func duration(_ seconds: Double) -> String {
            if seconds < 3600 { return "\(Int(seconds / 60)) min" }
            if seconds < 2 * 86_400 { return "\(Int(seconds / 3600)) h" }
            return "\(Int(seconds / 86_400)) days"
        }
    }

    /// The rate to keep from one engine's repeated timings of one kind: the fastest, when the
    /// second fastest is within `tolerance` of it; nil while they disagree.
    public static func agreedRate(_ rates: [Double], tolerance: Double = agreement) -> Double? {
        let sorted = rates.sorted(by: >)
        guard sorted.count >= 2, sorted[0] > 0, sorted[1] >= (1 - tolerance) * sorted[0] else { return nil }
        return sorted[0]
    }

    /// Whether a training's achieved GFLOP/s on one kind contradicts the cached rate of the
    /// engine that computed it: apart by more than `factor` either way, on products of at
    /// least `comparableFlopsPerCall` on average (smaller ones say nothing about the cache).
    public static func contradicts(cached: Double, achieved: Double, flopsPerCall: Double,
                                   factor: Double = contradictionFactor) -> Bool {
        guard flopsPerCall >= comparableFlopsPerCall, cached > 0, achieved > 0 else { return false }
        return achieved > factor * cached || achieved * factor < cached
    }

    /// The routing in force and the cache it came from; nil when no measurement routed it.
    private static let active = Mutex<(record: Record, cache: MeasurementCache<Record>)?>(nil)
    /// The start-up measurement's routing, which networks too small to measure keep.
    private static let startUp = Mutex<(record: Record, cache: MeasurementCache<Record>)?>(nil)

    /// Routes every kind of product and returns the log line that says where each goes and why;
    /// `remeasure` ignores a cached measurement.
    public static func choose(threads: Int, remeasure: Bool = false) -> String {
        let request = ProcessInfo.processInfo.environment[variable]?.lowercased() ?? "auto"
        active.withLock { $0 = nil }
        startUp.withLock { $0 = nil }
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
        let cache = self.cache(oneDNN: oneDNN, threads: threads)
        // The slots of a host start together: one measures, the others wait and read its answer,
        // so they all route alike and a task resumed on another slot stays bit-identical.
        let record = cache.answer(usable: { !remeasure && covers($0) }) { _ in measure() }
        for measurement in record.measurements { BLAS.route(measurement.kind, to: measurement.chosen) }
        active.withLock { $0 = (record, cache) }
        startUp.withLock { $0 = (record, cache) }
        let kept = record.repetitionsAgreed ? "" : Self.disagreement
        return "GEMM: \(record.table) GFLOP/s OpenBLAS vs \(oneDNN.description), \(threads) thread(s), measured on conv shapes, \(record.describe()); oneDNN where ≥ \(requiredMargin)× faster\(kept)\(unknown)"
    }

    /// What an engine line adds when the kept measurement's repeated timings disagreed.
    static var disagreement: String {
        "; repeated timings disagreed by more than \(Int(100 * agreement))% (a busy machine): kept so that every process routes alike, `worker engines --remeasure` on an idle machine replaces it"
    }

    /// Below this many floating-point operations in products per training step, a network
    /// keeps the routing measured at start-up: the smoke preset's width-4 networks on 16-pixel
    /// images (a few MFLOP) are too small to time the engines apart, and decide nothing.
    public static let smallestRoutedStep = 1e9

    /// Routes the products of a training of `network` on `batch` images of `side`² pixels to the
    /// engine measured faster on that network's own products, each weighted by its share of the
    /// step: the start-up measurement (`choose(threads:)`) times width-64 shapes, and a width-16
    /// network's products (16 rows, 144-deep, in 2 MiB chunks) rank the engines differently.
    /// Cached like the start-up answer, keyed also by width, batch and image size, and under the
    /// same lock, so the slots of a host route one network alike. Returns the log line, or nil
    /// (routing unchanged) when the start-up choice was not a measurement (an override, no
    /// oneDNN, or oneDNN wrong) or the step's products are below `smallestRoutedStep`; such a
    /// network gets the start-up routing back, so that what a process trained before never
    /// changes a run's bits.
    public static func choose(for network: ResNet18, batch: Int, side: Int, threads: Int) -> String? {
        guard let initial = startUp.withLock({ $0 }), let oneDNN = OneDNN.shared else { return nil }
        let products = network.gemmShapes(batch: batch, side: side)
        let kinds = Set(products.map(\.kind))
        guard products.reduce(0, { $0 + $1.stepFlops }) >= smallestRoutedStep else {
            for measurement in initial.record.measurements { BLAS.route(measurement.kind, to: measurement.chosen) }
            active.withLock { $0 = initial }
            return nil
        }
        let name = "width \(network.architecture.width), batch \(batch), \(side)² images"
        let cache = self.cache(oneDNN: oneDNN, threads: threads, products: name)
        let record = cache.answer(usable: { covers($0, kinds: kinds) }) { _ in measure(products: products) }
        // Kinds the network does not perform keep the start-up routing.
        for measurement in initial.record.measurements + record.measurements { BLAS.route(measurement.kind, to: measurement.chosen) }
        active.withLock { $0 = (record, cache) }
        let kept = record.repetitionsAgreed ? "" : Self.disagreement
        return "GEMM for \(name): \(record.table) GFLOP/s OpenBLAS vs oneDNN on its own products, \(record.describe())\(kept)"
    }

    /// Compares a stretch of training's own GEMM rates (`usage`, the difference of two
    /// `BLAS.usage` readings) with the measurement that routed them. When one kind's rate
    /// contradicts it, the cache is dropped so the next start measures again; this process
    /// keeps its routing, so the running task stays deterministic. Returns the warning to log,
    /// once per process.
    public static func review(_ usage: BLAS.Usage) -> String? {
        guard let (record, cache) = active.withLock({ $0 }) else { return nil }
        for measurement in record.measurements {
            let kind = measurement.kind.rawValue
            guard usage.seconds[kind] > 0, usage.calls[kind] > 0 else { continue }
            let achieved = usage.flops[kind] / usage.seconds[kind] / 1e9
            let engine = measurement.chosen
            let cachedRate = engine == .oneDNN ? measurement.oneDNN : measurement.openBLAS
            guard contradicts(cached: cachedRate, achieved: achieved, flopsPerCall: usage.flops[kind] / Double(usage.calls[kind])) else { continue }
            active.withLock { $0 = nil }
            // Another slot may have measured again meanwhile: only this measurement is dropped.
            cache.drop { $0.measuredAt == record.measuredAt }
            return "GEMM: training ran \(measurement.kind) at \(Int(achieved.rounded())) GFLOP/s on \(engine == .oneDNN ? "oneDNN" : "OpenBLAS"), the cached measurement says \(Int(cachedRate.rounded())) (\(record.describe())); dropped \(cache.url.path) so the next start measures again (this run keeps its routing)"
        }
        return nil
    }

    /// Times every measured kind on both engines, in rounds (each round times every pair once,
    /// so a change of load hits both engines alike), until each pair's two fastest timings
    /// agree within `agreement` or `maximumRepetitions` rounds are done (4–10 seconds).
    public static func measure(products: [Conv2d.GEMMShape]? = nil) -> Record {
        // Pair 2i is kind i on OpenBLAS, 2i + 1 the same kind on oneDNN.
        let kinds = products.map { products in measuredKinds.filter { kind in products.contains { $0.kind == kind } } } ?? measuredKinds
        let pairs = kinds.flatMap { kind in [(kind, BLAS.Engine.openBLAS), (kind, .oneDNN)] }
        var timings = [[Double]](repeating: [], count: pairs.count)
        let before = CPUShare.reading()
        for _ in 0..<maximumRepetitions {
            for (index, (kind, engine)) in pairs.enumerated() where timings[index].count < 2 || agreedRate(timings[index]) == nil {
                timings[index].append(rate(kind, on: engine, products: products))
            }
            if timings.allSatisfy({ agreedRate($0) != nil }) { break }
        }
        let othersBusy = CPUShare.reading().othersBusyShare(since: before)
        let best = timings.map { agreedRate($0) ?? $0.max() ?? 0 }
        let measurements = kinds.enumerated().map { index, kind in
            Measurement(kind: kind, openBLAS: best[2 * index], oneDNN: best[2 * index + 1])
        }
        return Record(measurements: measurements, measuredAt: Date(), othersBusyShare: othersBusy,
                      repetitionsAgreed: timings.allSatisfy { agreedRate($0) != nil })
    }

    /// GFLOP/s of `kind` on `engine` over `products` (each product weighted by its share of
    /// the step's operations): by default the convolution shapes of ResNet18's four stages,
    /// each laid out as the convolution lays it out.
    static func rate(_ kind: BLAS.Kind, on engine: BLAS.Engine, products: [Conv2d.GEMMShape]? = nil) -> Double {
        var flops = 0.0, seconds = 0.0
        for product in products ?? probeProducts(kind) where product.kind == kind {
            let (transA, transB) = kind.transposes
            let rate = Benchmark.gemmRate(m: product.m, n: product.n, k: product.k, transA: transA, transB: transB, engine: engine,
                                          minimumSeconds: products == nil ? 0.1 : 0.03)
            flops += product.stepFlops
            seconds += product.stepFlops / rate
        }
        return seconds > 0 ? flops / seconds : 0
    }

    /// `BLASCoreSelection.probeShapes` as products of `kind`.
    static func probeProducts(_ kind: BLAS.Kind) -> [Conv2d.GEMMShape] {
        BLASCoreSelection.probeShapes.map { outChannels, positions, rows in
            let (transA, transB) = kind.transposes
            let (m, n, k): (Int, Int, Int)
            switch kind {
            case .nn: (m, n, k) = (outChannels, positions, rows)
            case .tn: (m, n, k) = (rows, positions, outChannels)
            case .nt, .tt: (m, n, k) = (outChannels, rows, positions)
            }
            return Conv2d.GEMMShape(m: m, n: n, k: k, transposeA: transA == .transpose, transposeB: transB == .transpose)
        }
    }

    /// Whether a kept record routes exactly `kinds`. Its answer is kept also when its timings
    /// disagreed: a process that measured again could route otherwise, and two runs of one
    /// task, or a run and its resume, would then differ in their bits (seen on a busy machine:
    /// two workers started together routed `A·B` to different engines). Such an answer says so
    /// in every engine line, a training whose own rate contradicts it drops it, and
    /// `worker engines --remeasure` replaces it.
    private static func covers(_ record: Record, kinds: Set<BLAS.Kind> = Set(measuredKinds)) -> Bool {
        Set(record.measurements.map(\.kind)) == kinds
    }

    /// Keyed by everything a measurement holds only while it holds: the CPU model, OpenBLAS's
    /// build (version and options) and kernel family, oneDNN's version and file, the threads.
    private static func cache(oneDNN: OneDNN, threads: Int, products: String? = nil) -> MeasurementCache<Record> {
        MeasurementCache("gemm-engines", key: [BLASCoreSelection.cpuModel, BLAS.configuration, BLAS.coreName, oneDNN.description, String(threads)]
                         + (products.map { [$0] } ?? []))
    }
}

/// How busy the CPUs are, from `/proc/stat`, and how much of that this process did itself
/// (`getrusage`, its BLAS threads included): what is left is other processes' load.
struct CPUShare {
    /// Busy and total clock ticks of all CPUs, and this process's CPU seconds.
    var busyTicks: Double, totalTicks: Double, ownSeconds: Double

    static func reading() -> CPUShare {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let own = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let line = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8))?.split(separator: "\n").first ?? ""
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
        let total = fields.prefix(8).reduce(0, +)
        let idle = fields.count >= 5 ? fields[3] + fields[4] : total
        return CPUShare(busyTicks: total - idle, totalTicks: total, ownSeconds: own)
    }

    /// The share of all CPUs' time since `earlier` that other processes used (0…1; 0 where
    /// `/proc/stat` is unreadable).
    func othersBusyShare(since earlier: CPUShare) -> Double {
        let total = totalTicks - earlier.totalTicks
        guard total > 0 else { return 0 }
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let others = (busyTicks - earlier.busyTicks) - (ownSeconds - earlier.ownSeconds) * ticksPerSecond
        return Swift.min(1, Swift.max(0, others / total))
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
