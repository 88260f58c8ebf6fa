import Foundation
import Model

/// `worker selftest --device cuda`: what a user runs on a new GPU host, and what
/// `scripts/gpu-check.sh` runs from the bundle (GPU hosts have no Swift toolchain, so the GPU
/// checks live in the worker itself). Each check compares the GPU with a reference it carries:
/// the PyTorch fixture, the CPU trainer, or an uninterrupted run of its own.
public struct DeviceSelfTest {
    /// One check's outcome: the measured value and the limit it must stay under.
    public typealias Check = GPUParity.Check

    /// The GPU under test.
    public let device: CUDADevice
    /// The PyTorch width-8 fixture (`resnet18_w8_train.safetensors`).
    public let fixture: URL
    /// Fashion-MNIST's directory, for the accuracy check (skipped when nil).
    public let fashionMNIST: URL?
    /// The worker executable, for the kill -9 check (skipped when nil).
    public let executable: URL?
    /// Scratch space, removed afterwards.
    public let scratch: URL

    /// A self-test of `device`.
    public init(device: CUDADevice, fixture: URL, fashionMNIST: URL?, executable: URL?, scratch: URL) {
        self.device = device
        self.fixture = fixture
        self.fashionMNIST = fashionMNIST
        self.executable = executable
        self.scratch = scratch
    }

    /// Runs every check, reporting each as it ends; a check that cannot run at all is
    /// reported as failed with its error.
    public func run(report: (Check, String?) -> Void) -> [Check] {
        var checks: [Check] = []
        func attempt(_ name: String, _ body: () throws -> [Check]) {
            do {
                for check in try body() {
                    checks.append(check)
                    report(check, nil)
                }
            } catch {
                let failed = Check(name: name, value: .infinity, limit: 0)
                checks.append(failed)
                report(failed, "\(error)")
            }
        }
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        attempt("fp32 parity with PyTorch") { try GPUParity.run(on: device, fixture: try Safetensors(contentsOf: fixture)) }
        attempt("GPU kernels against the CPU (NaN, SGD bits)") { try GPUKernelChecks.run(on: device) }
        attempt("convolution algorithms chosen twice") { [try algorithmsRepeat()] }
        attempt("pruned weights stay zero") { try maskedWeightsStayZero() }
        attempt("checkpoints move between CPU and GPU") { try checkpointsMoveBetweenDevices() }
        if let fashionMNIST { attempt("Fashion-MNIST accuracy GPU vs CPU") { [try fashionMNISTAgreesWithCPU(fashionMNIST)] } }
        if let executable { attempt("kill -9 and resume is bit-identical") { [try killedRunResumesBitIdentical(executable)] } }
        return checks
    }

    /// A small synthetic configuration that trains in seconds on a GPU.
    private func smallConfig(epochs: Int, precision: Precision = .fp32) -> TrainingConfig {
        TrainingConfig(dataset: .synthetic, width: 8, epochs: epochs, batchSize: 64, learningRate: 0.05, schedule: .constant,
                       validationSize: 0, synthetic: .init(trainCount: 512, testCount: 256, side: 16), seed: 7, precision: precision)
    }

    private func directory(_ name: String) -> URL {
        let url = scratch.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: url)
        return url
    }

    /// The configurations whose convolution algorithms the GPU check compares with
    /// `worker bench`'s (`scripts/gpu-check.sh` benches these), keyed "PRECISION-BATCH".
    public static let comparedBenches: [(precision: Precision, batch: Int)] = [(.fp32, 128), (.tf32, 128)]

    /// The cuDNN algorithms `worker bench` would choose for each of `comparedBenches`: the
    /// same lines from a bench (another process) mean the choice does not depend on the run.
    public func convolutionAlgorithms() throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for (precision, batch) in Self.comparedBenches {
            var options = GPUBenchmark.Options()
            options.precision = precision
            options.batchSize = batch
            result["\(precision.rawValue)-\(batch)"] = try GPUBenchmark.convolutionAlgorithms(on: device, options)
        }
        return result
    }

    /// Two fresh networks of one configuration choose the same algorithms in this process.
    func algorithmsRepeat() throws -> Check {
        let first = try convolutionAlgorithms(), second = try convolutionAlgorithms()
        let lines = first.values.reduce(0) { $0 + $1.count }
        let differing = first.keys.filter { first[$0] != second[$0] }.count
        return Check(name: "configurations whose convolution algorithms differ between two choices (\(lines) shapes)", value: Double(differing), limit: 1)
    }

    /// Trains under a random 70%-sparse mask on the GPU and counts masked weights that are
    /// not exactly zero afterwards (must be none); the same training must have run its steps
    /// as CUDA graphs (unless PRUNESWEEP_CUDA_GRAPHS=0).
    func maskedWeightsStayZero() throws -> [Check] {
        let config = smallConfig(epochs: 2)
        let data = try config.loadData()
        let probe = ResNet18(.init(width: 8, inputChannels: 3, classes: 10))
        var random = RandomStream(seed: 11, stream: .pruning)
        var masks: [String: Tensor] = [:]
        for parameter in probe.prunableParameters {
            let mask = Tensor(shape: parameter.shape)
            for i in 0..<mask.count { mask[i] = random.nextUnitFloat() < 0.3 ? 1 : 0 }
            masks[parameter.name] = mask
        }
        let trainer = try Trainer(config: config, data: data, directory: directory("masked"), masks: masks, device: .cuda(device), log: { _ in })
        try trainer.run()
        var nonZero = 0
        for parameter in trainer.network.prunableParameters {
            guard let mask = masks[parameter.name] else { continue }
            for i in 0..<mask.count where mask[i] == 0 && parameter.value[i] != 0 { nonZero += 1 }
        }
        let graphs = trainer.engine.usedCUDAGraphs == true
        return [Check(name: "masked weights not exactly zero after GPU training", value: Double(nonZero), limit: 1),
                Check(name: "GPU training without CUDA graphs (0: its steps were graph replays)", value: graphs ? 0 : 1, limit: 1)]
    }

    /// Epoch 1 on the CPU then epoch 2 on the GPU, and the reverse, against the CPU alone:
    /// both resumed runs finish, and land within 5 points of its test accuracy.
    func checkpointsMoveBetweenDevices() throws -> [Check] {
        let config = smallConfig(epochs: 2)
        let data = try config.loadData()
        let reference = try Trainer(config: config, data: data, directory: directory("cpu-only"), log: { _ in })
        try reference.run()
        let cpuAccuracy = reference.history.last?.testAccuracy ?? 0
        var checks: [Check] = []
        for (first, second, name) in [(ComputeDevice.cpu, ComputeDevice.cuda(device), "CPU checkpoint resumed on the GPU"),
                                      (.cuda(device), .cpu, "GPU checkpoint resumed on the CPU")] {
            let run = directory(name.replacingOccurrences(of: " ", with: "-"))
            try Trainer(config: config, data: data, directory: run, device: first, log: { _ in }).run(stopAfterEpoch: 1)
            let resumed = try Trainer(config: config, data: data, directory: run, device: second, log: { _ in })
            guard resumed.history.count == 1 else { throw ModelError.invalidCheckpoint("\(name): the second trainer did not resume after epoch 1") }
            try resumed.run()
            checks.append(Check(name: "\(name): |test accuracy − CPU-only run's|", value: abs((resumed.history.last?.testAccuracy ?? 0) - cpuAccuracy), limit: 0.05))
        }
        return checks
    }

    /// The recipe (width 16, 2,000 training images, 2 epochs, batch 128, SGD 0.1/0.9/5e-4
    /// cosine, crop and flip, seed 0, all 10,000 test images) on the CPU and the GPU in fp32.
    func fashionMNISTAgreesWithCPU(_ directory: URL) throws -> Check {
        let config = TrainingConfig(dataset: .fashionMNIST, width: 16, epochs: 2, batchSize: 128, learningRate: 0.1, schedule: .cosine,
                                    validationSize: 0, trainLimit: 2000, seed: 0, precision: .fp32)
        let data = try config.loadData(from: directory)
        var accuracies: [Double] = []
        for device in [ComputeDevice.cpu, .cuda(device)] {
            let trainer = try Trainer(config: config, data: data, directory: self.directory("fashion-\(device.name)"), device: device, log: { _ in })
            try trainer.run()
            accuracies.append(trainer.history.last?.testAccuracy ?? 0)
        }
        return Check(name: String(format: "Fashion-MNIST |GPU − CPU| test accuracy (CPU %.2f%%, GPU %.2f%%)", 100 * accuracies[0], 100 * accuracies[1]),
                     value: abs(accuracies[1] - accuracies[0]), limit: 0.01)
    }

    /// `worker train --device cuda` killed with SIGKILL after its first checkpoint and run again
    /// ends with the same bytes in every tensor as an uninterrupted run.
    func killedRunResumesBitIdentical(_ executable: URL) throws -> Check {
        let interrupted = directory("killed"), whole = directory("whole")
        func arguments(_ out: URL) -> [String] {
            ["train", "--device", "cuda:\(device.info.index)", "--dataset", "synthetic", "--width", "8", "--epochs", "6", "--batch-size", "64",
             "--schedule", "cosine", "--validation-size", "0", "--seed", "3", "--out", out.path]
        }
        func start(_ out: URL) throws -> Process {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments(out)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        let victim = try start(interrupted)
        let checkpoint = interrupted.appendingPathComponent("checkpoint.safetensors")
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: checkpoint.path) && victim.isRunning && Date() < deadline { usleep(5_000) }
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        guard !FileManager.default.fileExists(atPath: interrupted.appendingPathComponent("weights.safetensors").path) else {
            throw ModelError.invalidConfiguration("the run finished before it could be killed; the check needs a slower run")
        }
        for out in [interrupted, whole] {
            let process = try start(out)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw ModelError.invalidConfiguration("worker train --out \(out.path) exited with \(process.terminationStatus)") }
        }
        let a = try Safetensors(contentsOf: interrupted.appendingPathComponent("weights.safetensors"))
        let b = try Safetensors(contentsOf: whole.appendingPathComponent("weights.safetensors"))
        var differing = 0
        for name in b.entries.keys {
            if try a.tensor(name).array != b.tensor(name).array { differing += 1 }
        }
        return Check(name: "tensors differing after kill -9 and resume (of \(b.entries.count))", value: Double(differing), limit: 1)
    }
}
