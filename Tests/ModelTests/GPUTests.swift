import Foundation
import Testing
@testable import Model

/// The GPU path on a machine without a GPU: kernels compile with NVRTC, a missing driver is
/// one clear error, the GPU's batch format matches the CPU assembler. The checks that need a
/// device run where one is present (`worker selftest` runs them from a bundle).
@Suite struct GPUTests {
    /// NVRTC from PyPI (`nvidia-cuda-nvrtc`) runs without a driver; CI installs it, names its
    /// directory in PRUNESWEEP_CUDA_LIBRARY_PATH and sets PRUNESWEEP_REQUIRE_NVRTC=1.
    @Test func everyKernelCompilesForAmpereAndHopper() throws {
        let nvrtc: NVRTC
        do {
            nvrtc = try NVRTC()
        } catch {
            if ProcessInfo.processInfo.environment["PRUNESWEEP_REQUIRE_NVRTC"] == "1" {
                Issue.record("NVRTC is required here (PRUNESWEEP_REQUIRE_NVRTC=1) but did not load: \(error)")
            } else {
                print("skipped: NVRTC not found (\(error)); `pip install nvidia-cuda-nvrtc` and set \(DynamicLibrary.searchPathVariable)")
            }
            return
        }
        for architecture in ["sm_80", "sm_90"] {
            let cubin = try nvrtc.compile(KernelSource.text, name: "prunesweep", architecture: architecture)
            #expect(cubin.count > 1000, "\(architecture): \(cubin.count) bytes")
            // Every kernel the launchers look up is in the module's symbol table.
            let text = String(decoding: cubin, as: UTF8.self)
            for name in KernelSource.names { #expect(text.contains(name), "\(architecture): kernel \(name) missing from the cubin") }
            print("NVRTC \(nvrtc.version): \(KernelSource.names.count) kernels → \(architecture) cubin of \(cubin.count) bytes")
        }
        let broken = #expect(throws: GPUError.self) { try nvrtc.compile("extern \"C\" __global__ void k() { undeclared(); }", name: "broken", architecture: "sm_90") }
        #expect(broken?.description.contains("undeclared") == true, "the compiler log names the error")
    }

    @Test func cachedCompileStoresTheCubinOnce() throws {
        guard let nvrtc = try? NVRTC() else { return print("skipped: NVRTC not found") }
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("prunesweep-kernels-\(getpid())")
        defer { try? FileManager.default.removeItem(at: cache) }
        let first = try nvrtc.cachedCompile(KernelSource.text, name: "prunesweep", architecture: "sm_90", cache: cache)
        let second = try nvrtc.cachedCompile(KernelSource.text, name: "prunesweep", architecture: "sm_90", cache: cache)
        #expect(!first.cached && second.cached && first.cubin == second.cubin)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).count == 1)
    }

    /// Where no driver is installed, asking for CUDA fails with the driver's soname, and auto
    /// falls back to the CPU saying why.
    @Test func missingDriverIsOneClearError() throws {
        guard dlopen("libcuda.so.1", RTLD_NOW) == nil else { return print("skipped: this machine has a CUDA driver") }
        #expect(throws: GPUError.self) { try ComputeDevice.open(.cuda(0)) }
        do {
            _ = try ComputeDevice.open(.cuda(0))
        } catch {
            #expect(error.description.contains("libcuda.so.1") && error.description.contains(DynamicLibrary.searchPathVariable))
            #expect(!error.description.contains("\n"))
        }
        let auto = try ComputeDevice.open(.auto)
        #expect(auto.device.name == "cpu" && auto.reason.contains("libcuda.so.1"))
    }

    @Test func deviceRequestsParse() {
        #expect(ComputeDevice.Request("auto") == .auto && ComputeDevice.Request("cpu") == .cpu)
        #expect(ComputeDevice.Request("cuda") == .cuda(0) && ComputeDevice.Request("cuda:3") == .cuda(3))
        #expect(ComputeDevice.Request("gpu") == nil && ComputeDevice.Request("cuda:-1") == nil && ComputeDevice.Request("cuda:x") == nil)
    }

    /// A configuration that names no precision keeps the identity it had before the field
    /// existed; naming one makes another experiment.
    @Test func precisionIsPartOfTheExperimentOnlyWhenSet() {
        let plain = TrainingConfig(dataset: .synthetic, synthetic: .init(trainCount: 8, testCount: 8, side: 8))
        #expect(!String(decoding: plain.canonicalJSON, as: UTF8.self).contains("precision"))
        var tf32 = plain
        tf32.precision = .tf32
        #expect(tf32.identity != plain.identity)
        #expect(ComputeDevice.cpu.effectivePrecision(.tf32) == .fp32)
    }

    /// The GPU's augmentation kernel, transcribed line by line onto the packed plan words it
    /// reads, gives exactly the pixels of the CPU assembler (which writes channel-major).
    @Test func packedPlansAugmentLikeTheCPUAssembler() throws {
        let (c, h, w) = (3, 10, 10)
        var random = RandomStream(seed: 5, stream: .synthetic)
        let data = try ImageDataset(name: "tiny", channels: c, height: h, width: w, classes: 4,
                                    pixels: (0..<(6 * c * h * w)).map { _ in UInt8(truncatingIfNeeded: random.next()) },
                                    labels: [0, 1, 2, 3, 0, 1], mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3])
        var augmentation: RandomStream? = RandomStream(seed: 9, stream: .augmentation)
        let plan = BatchPlan(data, indices: [4, 1, 1, 5][...], random: &augmentation)
        #expect(plan.padding == 2 && plan.crops.contains { $0.flip } && plan.crops.contains { $0.dy != 2 || $0.dx != 2 })
        let assembler = BatchAssembler()
        let cpu = assembler.assemble(data, plan: plan).nchwArray
        #expect(assembler.labels == [0, 1, 1, 1])

        let words = plan.packed, n = plan.indices.count
        let scale = data.std.map { 1 / (255 * $0) }, shift = zip(data.mean, data.std).map { -$0 / $1 }
        var gpu = [Float](repeating: .nan, count: n * c * h * w)
        for i in 0..<gpu.count {
            let x = i % w, y = (i / w) % h, ch = (i / (w * h)) % c, image = i / (w * h * c)
            let p = Array(words[(4 * image)..<(4 * image + 4)]).map(Int.init)
            let sy = y + p[1] - plan.padding, sx = (p[3] != 0 ? w - 1 - x : x) + p[2] - plan.padding
            var value = shift[ch]
            if sy >= 0 && sy < h && sx >= 0 && sx < w {
                value = Float(data.pixels[(p[0] * c + ch) * h * w + sy * w + sx]) * scale[ch] + shift[ch]
            }
            gpu[i] = value
        }
        #expect(gpu == cpu)
    }

    /// The trainer hands every engine the same plans, drawn from the run's streams: a run
    /// stopped after epoch 1 and resumed draws epoch 2's plans exactly as an uninterrupted one.
    @Test func epochPlansContinueAcrossAResume() throws {
        let config = TrainingConfig(dataset: .synthetic, width: 2, epochs: 2, batchSize: 16, schedule: .constant, validationSize: 0,
                                    synthetic: .init(trainCount: 40, testCount: 8, side: 8), seed: 4)
        let data = try config.loadData()
        var shuffle = RandomStream(seed: config.seed, stream: .shuffle)
        var augmentation: RandomStream? = RandomStream(seed: config.seed, stream: .augmentation)
        let epoch1 = Trainer.epochPlans(data.train, batchSize: 16, shuffle: &shuffle, augmentation: &augmentation)
        let epoch2 = Trainer.epochPlans(data.train, batchSize: 16, shuffle: &shuffle, augmentation: &augmentation)
        #expect(epoch1.map(\.indices.count) == [16, 16, 8] && epoch1 != epoch2)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prunesweep-plans-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        try Trainer(config: config, data: data, directory: directory, log: { _ in }).run(stopAfterEpoch: 1)
        let saved = try Checkpoint.load(directory.appendingPathComponent("checkpoint.safetensors"),
                                        into: ResNet18(.init(width: 2, inputChannels: 3, classes: 10)))
        var resumedShuffle = try TrainingProgress.stream(saved.shuffleState)
        var resumedAugmentation: RandomStream? = try TrainingProgress.stream(saved.augmentationState)
        #expect(Trainer.epochPlans(data.train, batchSize: 16, shuffle: &resumedShuffle, augmentation: &resumedAugmentation) == epoch2)
    }

    /// On a GPU host the device checks of `worker selftest` run here too.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PRUNESWEEP_GPU_TESTS"] == "1", "set PRUNESWEEP_GPU_TESTS=1 on a GPU host"))
    func parityOnTheDevice() throws {
        guard case .cuda(let device) = try ComputeDevice.open(.cuda(0)).device else { return }
        for check in try GPUParity.run(on: device, fixture: Fixtures.training) {
            #expect(check.passed, "\(check.name): \(check.value) ≥ \(check.limit)")
        }
    }
}
