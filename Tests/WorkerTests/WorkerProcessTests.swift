import Foundation
@testable import Model
import Testing

/// The `worker` program as a user runs it: real processes, killed and restarted.
@Suite(.serialized) struct WorkerProcessTests {
    /// The `worker` executable built beside this test bundle.
    static var worker: URL {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundleDirectory.appendingPathComponent("worker")
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("prunesweep-worker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func start(_ arguments: [String], environment: [String: String] = [:], output: URL? = nil) throws -> Process {
        let process = Process()
        process.executableURL = worker
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let output {
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: output)
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func trainArguments(_ directory: URL, threads: Int = 1) -> [String] {
        ["train", "--dataset", "synthetic", "--width", "4", "--epochs", "3", "--batch-size", "64", "--lr", "0.05",
         "--schedule", "cosine", "--validation-size", "64", "--seed", "3", "--threads", String(threads), "--out", directory.path]
    }

    /// On a machine without CUDA, `--device cuda` stops before anything is written, with one
    /// line naming the missing driver library.
    @Test func deviceCudaWithoutCUDAIsOneLineAndWritesNothing() throws {
        guard dlopen("libcuda.so.1", RTLD_NOW) == nil else { return print("skipped: this machine has a CUDA driver") }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = directory.appendingPathComponent("run")
        let process = Process()
        process.executableURL = Self.worker
        process.arguments = ["train", "--device", "cuda", "--dataset", "synthetic", "--epochs", "1", "--out", run.path]
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1 && text.contains("libcuda.so.1"), "stderr: \(text)")
        #expect(!FileManager.default.fileExists(atPath: run.path))
    }

    /// `kill -9` after the first checkpoint, the same command again: the run resumes and ends
    /// with weights bit-identical to an uninterrupted run's; on OpenBLAS with one thread, and
    /// on oneDNN with two (its threads split products, and the split must not vary).
    @Test(.timeLimit(.minutes(10)), arguments: [(BLAS.Engine.openBLAS, 1), (.oneDNN, 2)])
    func killedRunResumesBitIdentical(engine: BLAS.Engine, threads: Int) throws {
        if engine == .oneDNN {
            try #require(OneDNN.shared != nil, "oneDNN is not installed: `make deps` installs libdnnl2")
        }
        let environment = [GEMMEngineSelection.variable: engine.rawValue]
        let whole = try Self.temporaryDirectory(), killed = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: whole); try? FileManager.default.removeItem(at: killed) }
        let reference = try Self.start(Self.trainArguments(whole, threads: threads), environment: environment)
        reference.waitUntilExit()
        #expect(reference.terminationStatus == 0)

        let victim = try Self.start(Self.trainArguments(killed, threads: threads), environment: environment)
        let checkpoint = killed.appendingPathComponent("checkpoint.safetensors")
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: checkpoint.path) && Date() < deadline { usleep(2_000) }
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: killed.appendingPathComponent("weights.safetensors").path),
                "the run finished before it could be killed; the test proved nothing")

        let log = killed.appendingPathComponent("log.txt")
        let resumed = try Self.start(Self.trainArguments(killed, threads: threads), environment: environment, output: log)
        resumed.waitUntilExit()
        #expect(resumed.terminationStatus == 0)
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(text.contains("resuming"))
        #expect(text.contains(engine == .oneDNN ? "GEMM: oneDNN" : "GEMM: OpenBLAS"), "the log names another engine: \(text)")

        let a = try Safetensors(contentsOf: whole.appendingPathComponent("weights.safetensors"))
        let b = try Safetensors(contentsOf: killed.appendingPathComponent("weights.safetensors"))
        #expect(a.names == b.names && !a.names.isEmpty)
        for name in a.names { #expect(a.entries[name]?.bytes == b.entries[name]?.bytes, "\(name) differs") }
    }

    /// Every kernel family the CPU supports computes the same products as a plain loop (the
    /// probe refuses a core whose results are wrong), and the run log names the core.
    @Test(.timeLimit(.minutes(10)))
    func everyCandidateCoreIsCorrect() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? []
        for core in BLASCoreSelection.candidates(flags: Set(flags)) {
            let output = try Self.temporaryDirectory().appendingPathComponent("probe.txt")
            let probe = try Self.start(["blas-probe"], environment: ["OPENBLAS_CORETYPE": core, "OPENBLAS_NUM_THREADS": "1"], output: output)
            probe.waitUntilExit()
            #expect(probe.terminationStatus == 0, "core \(core) computed wrong products")
            #expect(try String(contentsOf: output, encoding: .utf8).hasPrefix(core + " "))
        }
    }

    @Test func badArgumentsFailWithOneClearLine() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = Self.worker
        process.arguments = ["train", "--dataset", "cifar10", "--data-dir", directory.path, "--epochs", "1", "--threads", "1",
                             "--out", directory.appendingPathComponent("run").path]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(message.contains("data_batch_1.bin is missing"), "stderr: \(message)")
    }
}
