import Foundation

/// Makes sure the BLAS runs the fastest kernel family this CPU supports, without the user
/// knowing about it.
///
/// OpenBLAS reads `OPENBLAS_CORETYPE` once, when the library loads, and 0.3.21 misdetects
/// some AVX-512 Xeons as "Prescott" (5× slower). So the program measures each kernel family
/// the CPU's flags allow, in child processes, on the network's own GEMM shapes; remembers
/// the winner in a cache file; and re-executes itself with the variable set. A value the
/// user set is never overridden. `OPENBLAS_THREAD_TIMEOUT` is lowered the same way, so idle
/// BLAS threads stop spinning on the cores that element-wise loops need between products.
public enum BLASCoreSelection {
    /// The OpenBLAS kernel-family variable.
    public static let coreVariable = "OPENBLAS_CORETYPE"
    /// OpenBLAS's idle-spin variable (2^value cycles before a thread sleeps).
    public static let timeoutVariable = "OPENBLAS_THREAD_TIMEOUT"
    /// Set in a re-executed process to the selection's explanation.
    public static let selectedVariable = "PRUNESWEEP_BLAS_SELECTED"
    /// Set in a measuring child process.
    public static let probeVariable = "PRUNESWEEP_BLAS_PROBE"

    /// The GEMM shapes (M, N, K) measured: convolutions of ResNet18 at batch 32 in stages 1–4.
    static let probeShapes = [(64, 32768, 576), (128, 8192, 1152), (256, 2048, 2304), (512, 512, 4608)]

    /// The kernel families worth measuring on a CPU with these `/proc/cpuinfo` flags, besides
    /// the one OpenBLAS picked itself.
    public static func candidates(flags: Set<String>) -> [String] {
        var names: [String] = []
        if flags.isSuperset(of: ["avx2", "fma"]) { names.append("Haswell") }
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) {
            names.append("SkylakeX")
            if flags.contains("avx512_bf16") { names.append("Cooperlake") }
        }
        return names
    }

    /// Decides the kernel family and, when the process does not run it yet, re-executes the
    /// program with the variables set (this call then does not return). Returns the log line
    /// that says which core is used and why.
    public static func ensureBestCore(threads: Int) -> String {
        let environment = ProcessInfo.processInfo.environment
        let current = BLAS.coreName
        if environment[probeVariable] != nil { return "BLAS probe: core \(current)" }
        if let reason = environment[selectedVariable] { return "BLAS: core \(current), \(threads) thread(s) (\(reason))" }
        if let user = environment[coreVariable] {
            return "BLAS: core \(current), \(threads) thread(s) (OPENBLAS_CORETYPE=\(user) set by the user)"
        }
        // One slot of a host measures while the others wait for its answer, so all run one core.
        let choice = (try? FileLock.withLock(cacheURL().appendingPathExtension("lock")) {
            cachedChoice() ?? measure(current: current, threads: threads)
        }) ?? measure(current: current, threads: threads)
        var reexecEnvironment = environment
        reexecEnvironment[coreVariable] = choice.core
        if environment[timeoutVariable] == nil { reexecEnvironment[timeoutVariable] = "4" }
        reexecEnvironment[selectedVariable] = choice.reason
        reexecute(with: reexecEnvironment)
        return "BLAS: core \(current), \(threads) thread(s) (re-executing with \(choice.core) failed; \(choice.reason))"
    }

    /// What the hidden `blas-probe` command of each program prints: "CORE GFLOPS", or nil when
    /// the loaded core computed wrong products. `measure` runs that command of `/proc/self/exe`,
    /// so every program that calls `ensureBestCore` must have it.
    public static func probeLine() -> String? {
        probe().map { "\(BLAS.coreName) \($0)" }
    }

    /// Measures GEMM GFLOP/s on the probe shapes with the loaded core, after checking one
    /// odd-shaped product against a plain loop. Run in a child process per candidate.
    static func probe() -> Double? {
        guard BLASCheck.maximumError(m: 37, n: 53, k: 29) < 1e-4 else { return nil }
        var seconds = 0.0, flops = 0.0
        for (m, n, k) in probeShapes {
            let rate = Benchmark.gemmRate(m: m, n: n, k: k, minimumSeconds: 0.1)
            flops += 2 * Double(m * n * k)
            seconds += 2 * Double(m * n * k) / rate
        }
        return flops / seconds
    }

    private struct Choice: Codable {
        var core: String
        var reason: String
    }

    private static func cacheURL() -> URL {
        UserCache.file("blas-core", key: [cpuModel, BLAS.configuration])
    }

    /// The CPU's model name from `/proc/cpuinfo`, part of every measurement's cache key.
    static var cpuModel: String { cpuInfo()["model name"] ?? "cpu" }

    private static func cachedChoice() -> Choice? {
        guard let data = try? Data(contentsOf: cacheURL()) else { return nil }
        return try? JSONDecoder().decode(Choice.self, from: data)
    }

    private static func measure(current: String, threads: Int) -> Choice {
        let flags = Set((cpuInfo()["flags"] ?? "").split(separator: " ").map(String.init))
        var results: [(core: String, rate: Double)] = []
        for core in [current] + candidates(flags: flags) where !results.contains(where: { $0.core == core }) {
            if let rate = runProbe(core: core, threads: threads) { results.append((core, rate)) }
        }
        // Not kept: a process that cannot run the probe (one without the hidden command) must
        // not leave its failure to the processes that can.
        guard let best = results.max(by: { $0.rate < $1.rate }) else {
            return Choice(core: current, reason: "autodetected; measuring the alternatives failed")
        }
        let table = results.sorted { $0.rate > $1.rate }.map { "\($0.core) \(Int($0.rate.rounded()))" }.joined(separator: ", ")
        let choice = Choice(core: best.core, reason: "chosen by measurement on conv-shaped GEMMs, GFLOP/s: \(table); autodetected \(current)")
        let url = cacheURL()
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? JSONEncoder().encode(choice).write(to: url, options: .atomic)
        return choice
    }

    /// Runs this program's hidden `blas-probe` command with `core` loaded; nil if it failed,
    /// computed wrong results, or OpenBLAS ignored the requested core.
    private static func runProbe(core: String, threads: Int) -> Double? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["blas-probe"]
        var environment = ProcessInfo.processInfo.environment
        environment[coreVariable] = core
        environment[probeVariable] = "1"
        environment["OPENBLAS_NUM_THREADS"] = String(threads)
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let fields = output.split(separator: " ")
        guard process.terminationStatus == 0, fields.count == 2, fields[0] == core else { return nil }
        return Double(fields[1].trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private static func reexecute(with environment: [String: String]) {
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        let pairs = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        execve("/proc/self/exe", arguments, pairs)
    }

    private static func cpuInfo() -> [String: String] {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [:] }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { if !fields.isEmpty { break } else { continue } }
            fields[parts[0].trimmingCharacters(in: .whitespaces)] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }
}

/// A check of the linked BLAS against a plain triple loop in Double.
public enum BLASCheck {
    /// The largest relative difference over the four transpose combinations of an m×n×k
    /// product computed by `engine`.
    public static func maximumError(m: Int, n: Int, k: Int, engine: BLAS.Engine = .openBLAS) -> Double {
        var random = RandomStream(seed: 7, stream: .synthetic)
        let a = (0..<(m * k)).map { _ in random.nextSymmetric(1) }
        let b = (0..<(k * n)).map { _ in random.nextSymmetric(1) }
        var worst = 0.0
        for (ta, tb) in [(BLAS.Transpose.none, BLAS.Transpose.none), (.none, .transpose), (.transpose, .none), (.transpose, .transpose)] {
            var c = [Float](repeating: 0, count: m * n)
            let lda = ta == .none ? k : m, ldb = tb == .none ? n : k
            BLAS.gemm(on: engine, ta, tb, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: &c, ldc: n)
            for i in 0..<m {
                for j in 0..<n {
                    var expected = 0.0
                    for p in 0..<k {
                        let x = ta == .none ? a[i * k + p] : a[p * m + i]
                        let y = tb == .none ? b[p * n + j] : b[j * k + p]
                        expected += Double(x) * Double(y)
                    }
                    worst = Swift.max(worst, abs(Double(c[i * n + j]) - expected) / Swift.max(1, abs(expected)))
                }
            }
        }
        return worst
    }
}
