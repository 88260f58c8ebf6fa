import Foundation
import Testing
@testable import Model

/// The GPU path's decisions that do not need a GPU (issue 18): which cuDNN algorithm is taken
/// from a heuristic list, where the CUDA libraries are looked for, what a failed cuDNN probe
/// names, which batches an engine accepts, and that the kernels compute what the CPU does
/// (NaN through ReLU and argmax, SGD in the CPU's rounding order). `worker selftest` checks
/// the same on a device.
@Suite struct GPUPathTests {
    typealias P = CUDNN.Performance
    static let fma = CUDNN.Constant.mathFMA, tensorOp = CUDNN.Constant.mathTensorOp, plain = CUDNN.Constant.mathDefault

    // MARK: - Algorithm choice

    @Test func theFirstDeterministicFittingAlgorithmInHeuristicOrderIsTaken() {
        let list = [
            P(algorithm: 6, memory: 0, deterministic: false, mathType: Self.fma),           // fastest, not deterministic
            P(algorithm: 7, status: 9, memory: 0, deterministic: true, mathType: Self.fma), // not supported for this shape
            P(algorithm: 1, memory: 300 << 20, deterministic: true, mathType: Self.fma),     // needs more than the workspace
            P(algorithm: 0, memory: 0, deterministic: true, mathType: Self.fma),
            P(algorithm: 2, memory: 0, deterministic: true, mathType: Self.fma),
        ]
        let choice = ConvolutionAlgorithmChoice.choose(list, precision: .fp32, workspaceBytes: 256 << 20) { $0.memory }
        #expect(choice == .init(algorithm: 0, math: Self.fma, workspace: 0))
        // The same list gives the same answer however often it is asked: no timing involved.
        for _ in 0..<3 { #expect(ConvolutionAlgorithmChoice.choose(list, precision: .fp32, workspaceBytes: 256 << 20) { $0.memory } == choice) }
        // With a larger workspace the heuristically faster algorithm 1 fits and wins.
        #expect(ConvolutionAlgorithmChoice.choose(list, precision: .fp32, workspaceBytes: 512 << 20) { $0.memory }?.algorithm == 1)
    }

    @Test func fp32RefusesTensorCoresAndRunsInFMAMath() {
        let list = [P(algorithm: 1, memory: 0, deterministic: true, mathType: Self.tensorOp),
                    P(algorithm: 1, memory: 0, deterministic: true, mathType: Self.plain)]
        #expect(ConvolutionAlgorithmChoice.choose(list, precision: .fp32, workspaceBytes: 1) { $0.memory }
                == .init(algorithm: 1, math: Self.fma, workspace: 0))
        #expect(ConvolutionAlgorithmChoice.choose(list, precision: .tf32, workspaceBytes: 1) { $0.memory }
                == .init(algorithm: 1, math: Self.tensorOp, workspace: 0))
    }

    @Test func aFailedWorkspaceQueryOrNoCandidateIsNoChoice() {
        let list = [P(algorithm: 0, memory: 0, deterministic: true, mathType: Self.fma), P(algorithm: 5, memory: 0, deterministic: false, mathType: Self.fma)]
        #expect(ConvolutionAlgorithmChoice.choose(list, precision: .fp32, workspaceBytes: 1 << 20) { _ in nil } == nil)
        #expect(ConvolutionAlgorithmChoice.choose([], precision: .tf32, workspaceBytes: 1 << 20) { $0.memory } == nil)
        #expect(ConvolutionAlgorithmChoice.refusal(list, precision: .fp32) == "cuDNN's heuristics offered 2 algorithms, 2 usable, 1 of those deterministic (tensor-core ones excluded in fp32)")
    }

    /// The perf struct as cuDNN lays it out (algo, status, time, pad, size_t memory, determinism,
    /// mathType, reserved[3]) reads back field by field.
    @Test func perfStructsAreReadAtTheirOffsets() {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: P.stride, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0xEE, count: P.stride)
        raw.storeBytes(of: Int32(5), toByteOffset: 0, as: Int32.self)
        raw.storeBytes(of: Int32(0), toByteOffset: 4, as: Int32.self)
        raw.storeBytes(of: Float(-1), toByteOffset: 8, as: Float.self)
        raw.storeBytes(of: 12345, toByteOffset: 16, as: Int.self)
        raw.storeBytes(of: Int32(1), toByteOffset: 24, as: Int32.self)
        raw.storeBytes(of: Int32(3), toByteOffset: 28, as: Int32.self)
        #expect(P(reading: raw) == P(algorithm: 5, status: 0, milliseconds: -1, memory: 12345, deterministic: true, mathType: 3))
    }

    // MARK: - Libraries in Python wheels

    /// A fake site-packages with empty files named like the wheels' libraries: cuDNN from the
    /// cudnn wheel, cuBLAS and NVRTC 13 from the cu13 wheel, NVRTC 12 from cuda_nvrtc, and a
    /// torch/lib that only a second site directory has.
    @Test func wheelDirectoriesAreSearchedInTheDocumentedOrder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("prunesweep-wheels-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let site = root.appendingPathComponent("venv/lib/python3.12/site-packages").path
        let user = root.appendingPathComponent("user/site-packages").path
        for file in ["\(site)/nvidia/cudnn/lib/libcudnn.so.9", "\(site)/nvidia/cu13/lib/libcublas.so.13", "\(site)/nvidia/cu13/lib/libnvrtc.so.13",
                     "\(site)/nvidia/cuda_nvrtc/lib/libnvrtc.so.12", "\(site)/nvidia/cublas/lib/libcublas.so.12",
                     "\(user)/torch/lib/libcudnn.so.9", "\(user)/torch/lib/libnvrtc.so.13"] {
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        }
        let sites = [site, root.appendingPathComponent("missing").path, user]
        #expect(DynamicLibrary.wheelCandidates(sonames: ["libcudnn.so.9"], siteDirectories: sites)
                == ["\(site)/nvidia/cudnn/lib/libcudnn.so.9", "\(user)/torch/lib/libcudnn.so.9"])
        #expect(DynamicLibrary.wheelCandidates(sonames: ["libcublas.so.13", "libcublas.so.12"], siteDirectories: sites)
                == ["\(site)/nvidia/cu13/lib/libcublas.so.13", "\(site)/nvidia/cublas/lib/libcublas.so.12"])
        #expect(DynamicLibrary.wheelCandidates(sonames: ["libnvrtc.so.13", "libnvrtc.so.12"], siteDirectories: sites)
                == ["\(site)/nvidia/cu13/lib/libnvrtc.so.13", "\(site)/nvidia/cuda_nvrtc/lib/libnvrtc.so.12", "\(user)/torch/lib/libnvrtc.so.13"])
        #expect(DynamicLibrary.wheelCandidates(sonames: ["libcudnn.so.9"], siteDirectories: [user + "/nothing"]).isEmpty)
    }

    @Test func siteDirectoriesAndMappedFilesAreParsed() {
        #expect(DynamicLibrary.parseSiteDirectories("/usr/lib/python3/dist-packages\n\n/root/.local/lib/python3.11/site-packages\nrelative\n")
                == ["/usr/lib/python3/dist-packages", "/root/.local/lib/python3.11/site-packages"])
        let maps = """
        7f00-7f10 r--p 00000000 08:01 100 /usr/lib/x86_64-linux-gnu/libc.so.6
        7f20-7f30 r-xp 00000000 08:01 200 /opt/site-packages/nvidia/cudnn/lib/libcudnn.so.9.14.0
        7f40-7f50 rw-p 00000000 00:00 0
        """
        #expect(DynamicLibrary.mappedFile("libcudnn.so.9", maps: maps) == "/opt/site-packages/nvidia/cudnn/lib/libcudnn.so.9.14.0")
        #expect(DynamicLibrary.mappedFile("libcublas.so.13", maps: maps) == nil)
        #expect(DynamicLibrary.mappedFile("/a/b/libnvrtc.so.13", maps: maps) == "/a/b/libnvrtc.so.13")
    }

    /// The real Python's site directories all exist, and where CI installed NVRTC from PyPI
    /// (`nvidia-cuda-nvrtc`, PRUNESWEEP_REQUIRE_NVRTC=1) the wheel search finds it there.
    @Test func thisMachinesPythonFindsTheNVRTCWheel() {
        let sites = DynamicLibrary.pythonSiteDirectories
        for directory in sites {
            var isDirectory: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue, "\(directory)")
        }
        guard ProcessInfo.processInfo.environment["PRUNESWEEP_REQUIRE_NVRTC"] == "1" else { return }
        let found = DynamicLibrary.wheelCandidates(sonames: ["libnvrtc.so.13", "libnvrtc.so.12"], siteDirectories: sites)
        #expect(found.contains { $0.hasSuffix("/nvidia/cu13/lib/libnvrtc.so.13") }, "site directories \(sites), found \(found)")
        print("NVRTC wheels found through python3's site directories: \(found)")
    }

    @Test func aFailedCuDNNProbeNamesTheMissingSubLibraries() {
        let shim = "/opt/site-packages/nvidia/cudnn/lib/libcudnn.so.9"
        let partial = ["libcudnn.so.9", "libcudnn_graph.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_heuristic.so.9"]
        #expect(CUDNNProbe.missing(in: partial) == ["libcudnn_engines_precompiled.so.9", "libcudnn_engines_runtime_compiled.so.9"])
        let why = CUDNNProbe.explanation(shim: shim, files: partial, failure: "a 3×3 test convolution failed")
        #expect(why.contains("libcudnn_engines_precompiled.so.9, libcudnn_engines_runtime_compiled.so.9 missing from /opt/site-packages/nvidia/cudnn/lib"))
        let complete = CUDNNProbe.explanation(shim: shim, files: partial + CUDNNProbe.subLibraries, failure: "x")
        #expect(complete.contains("every sub-library it needs is in /opt/site-packages/nvidia/cudnn/lib"))
        let error = GPUError.libraryBroken(library: "cuDNN \(shim)", why: why)
        #expect(error.description.hasPrefix("cuDNN \(shim) is unusable: a 3×3 test convolution failed: libcudnn_engines_precompiled.so.9"))
        #expect(error.description.hasSuffix("or use --device cpu") && !error.description.contains("\n"))
    }

    // MARK: - Batches

    @Test func anEpochOfOversizedOrRaggedBatchesIsRefused() {
        func problem(_ sizes: [Int], rates: Int? = nil) -> String? {
            CUDAEngine.epochProblem(batchSizes: sizes, learningRates: rates ?? sizes.count, batchSize: 64, maxSteps: 4)
        }
        #expect(problem([64, 64, 64, 8]) == nil && problem([64]) == nil && problem([1]) == nil)
        #expect(problem([64, 65])?.contains("batch 2 of 2 has 65 images") == true)  // the last batch may not be larger
        #expect(problem([32, 64]) != nil && problem([64, 0]) != nil)
        #expect(problem([64, 64, 64, 64, 1])?.contains("5 batches") == true)
        #expect(problem([64, 64], rates: 1)?.contains("1 learning rates") == true)
    }

    // MARK: - Kernels against the CPU

    private func kernel(_ name: String) -> String {
        let text = KernelSource.text
        guard let start = text.range(of: "void \(name)(") else { return "" }
        let rest = text[start.upperBound...]
        let end = rest.range(of: "\n}\n")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }

    /// The CPU's ReLU is `Swift.max(v, 0)`; the kernels' `relu` is `0 >= v ? 0 : v`, which is
    /// the standard library's definition of max (`y >= x ? y : x`): same result for NaN, ±0, ±∞.
    @Test func reluKeepsNaNLikeTheCPU() {
        #expect(KernelSource.text.contains("float relu(float v) { return 0.0f >= v ? 0.0f : v; }"))
        #expect(kernel("relu_forward").contains("relu(x[i])") && kernel("add_relu_forward").contains("relu(__fadd_rn(a[i], b[i]))"))
        func gpu(_ v: Float) -> Float { 0 >= v ? 0 : v }
        for v: Float in [.nan, -.nan, 0, -0.0, 1.5, -1.5, .infinity, -.infinity, .leastNonzeroMagnitude] {
            let cpu = Swift.max(v, 0)
            #expect(gpu(v).bitPattern == cpu.bitPattern || (gpu(v).isNaN && cpu.isNaN), "\(v)")
        }
        #expect(Swift.max(Float.nan, 0).isNaN)
    }

    /// CrossEntropy.forward's argmax starts at -∞ with a strict >; the kernel's does too, so a
    /// NaN logit (first or not) is never the prediction on either device.
    @Test func argmaxSkipsNaNLikeTheCPU() {
        let source = kernel("softmax_cross_entropy")
        #expect(source.contains("float largest = __int_as_float(0xff800000);") && source.contains("for (int j = 0; j < k; j++) if (z[j] > largest)"))
        func argmax(_ z: [Float]) -> Int {
            var largest = -Float.infinity, predicted = 0
            for (j, v) in z.enumerated() where v > largest { largest = v; predicted = j }
            return predicted
        }
        let loss = CrossEntropy()
        for logits: [Float] in [[.nan, 1, 3], [2, .nan, 1], [.nan, .nan, .nan], [-.infinity, -1, .nan]] {
            var values = logits
            let predicted = argmax(logits)
            let labels: [Int32] = [Int32(predicted)]
            let correct = values.withUnsafeMutableBufferPointer { buffer in
                let map = FeatureMap(data: buffer.baseAddress!, channels: 3, batch: 1, height: 1, width: 1)
                return labels.withUnsafeBufferPointer { loss.forward(map, labels: $0) }.correct
            }
            #expect(correct == 1, "\(logits)")
        }
    }

    /// Every float operation of sgd_update is an explicit round-to-nearest intrinsic, so
    /// --fmad=true has nothing to fuse.
    @Test func sgdUpdateRoundsEveryOperation() {
        let source = kernel("sgd_update")
        let arithmetic = source.split(separator: "\n").filter { line in
            ["float d =", "b = first", "update = nesterov", "w[i] =", "buf[i] ="].contains { line.contains($0) }
        }
        #expect(arithmetic.count == 5)
        for line in arithmetic {
            let value = line.split(separator: "=", maxSplits: 1)[1].replacingOccurrences(of: #"__f(add|sub|mul)_rn\("#, with: "(", options: .regularExpression)
            #expect(!value.contains("*") && !value.contains("+") && !value.contains(" - "), "\(line)")
        }
    }

    /// sgd_update's operations, in its order and with its roundings (each Swift operation on
    /// Float rounds once, as __f*_rn does), give SGD.step's bits: first step and later, plain and
    /// Nesterov, masked and not.
    @Test func sgdUpdateInTheKernelsOrderIsTheCPUsBitForBit() throws {
        var random = RandomStream(seed: 3, stream: .synthetic)
        for (nesterov, masked) in [(false, false), (false, true), (true, true)] {
            let optimizer = SGD(momentum: 0.9, weightDecay: 5e-4, nesterov: nesterov)
            let parameter = Parameter(name: "w", shape: [257], prunable: true)
            for i in 0..<257 {
                parameter.value[i] = random.nextUnitFloat() * 2 - 1
                parameter.gradient[i] = (random.nextUnitFloat() - 0.5) * 1e-2
            }
            if masked {
                let mask = Tensor(shape: [257])
                for i in 0..<257 { mask[i] = i % 3 == 0 ? 0 : 1 }
                try parameter.setMask(mask)
            }
            var w = parameter.value.array, buf = [Float](repeating: 0, count: 257)
            let g = parameter.gradient.array, mask = parameter.mask?.array ?? [Float](repeating: 1, count: 257)
            for (step, lr) in [Float(0.1), 0.05, 0.0123].enumerated() {
                optimizer.step([parameter], learningRate: lr, firstStep: step == 0)
                for i in 0..<257 {
                    let d = g[i] + optimizer.weightDecay * w[i]
                    let b = step == 0 ? d : optimizer.momentum * buf[i] + d
                    let update = nesterov ? d + optimizer.momentum * b : b
                    w[i] = (w[i] - lr * update) * mask[i]
                    buf[i] = b * mask[i]
                }
                #expect(w.map(\.bitPattern) == parameter.value.array.map(\.bitPattern), "nesterov \(nesterov) masked \(masked) step \(step)")
                #expect(buf.map(\.bitPattern) == parameter.momentum.array.map(\.bitPattern))
            }
        }
    }

    // MARK: - Results

    /// A metrics.json written before the field loads with cudaGraphs nil.
    @Test func runSummariesWithoutTheGraphFieldStillLoad() throws {
        let config = TrainingConfig(dataset: .synthetic, synthetic: .init(trainCount: 8, testCount: 8, side: 8))
        var summary = RunSummary(config: config, identity: "x", history: [], bestValidationAccuracy: nil, bestEpoch: nil,
                                 bestValidationTestAccuracy: nil, finalTestAccuracy: 0.5, parameters: 1, prunable: 1, remaining: 1,
                                 blasCore: "c", threads: 1, device: "cuda:0 NVIDIA H200", precision: "tf32", cudaGraphs: true)
        let written = try JSONEncoder().encode(summary)
        #expect(String(decoding: written, as: UTF8.self).contains("\"cudaGraphs\":true"))
        var object = try #require(try JSONSerialization.jsonObject(with: written) as? [String: Any])
        object["cudaGraphs"] = nil
        summary = try JSONDecoder().decode(RunSummary.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(summary.cudaGraphs == nil && summary.device == "cuda:0 NVIDIA H200")
    }
}
