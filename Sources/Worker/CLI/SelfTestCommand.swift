import ArgumentParser
import Foundation
import Model
import Worker

/// `worker selftest --device cuda`: checks a GPU host against references the worker carries.
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Checks this host's GPU: fp32 parity with PyTorch, masks, CPU↔GPU checkpoints, Fashion-MNIST accuracy against the CPU, kill -9 and resume.",
        discussion: "Exits 0 when every check passes. The fixture is looked up beside the executable (share/fixtures in a bundle) unless --fixture names it.")

    @Option(help: "The PyTorch width-8 fixture (resnet18_w8_train.safetensors).") var fixture: String?
    @Option(help: "Fashion-MNIST's directory (the accuracy check is skipped when it has no files).") var dataDir = FashionMNIST.defaultDirectory.path
    @Option(help: "Also write the results as JSON to this file.") var json: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        let (device, lines) = try compute.prepare(precision: .fp32)
        lines.forEach(say)
        guard case .cuda(let gpu) = device else {
            FileHandle.standardError.write(Data("error: selftest checks a GPU and this worker has none (\(lines.first ?? "")); run it with --device cuda on a GPU host\n".utf8))
            throw ExitCode(2)
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        guard let fixtureURL = fixture.map({ URL(fileURLWithPath: $0) }) ?? Self.bundledFixture(beside: executable) else {
            FileHandle.standardError.write(Data("error: no resnet18_w8_train.safetensors beside \(executable.path) (share/fixtures); pass --fixture PATH\n".utf8))
            throw ExitCode(2)
        }
        let data = URL(fileURLWithPath: dataDir)
        let hasData = FileManager.default.fileExists(atPath: data.appendingPathComponent("t10k-images-idx3-ubyte.gz").path)
        if !hasData { say("Fashion-MNIST not found in \(data.path): its accuracy check is skipped") }
        let test = DeviceSelfTest(device: gpu, fixture: fixtureURL, fashionMNIST: hasData ? data : nil, executable: executable,
                                  scratch: FileManager.default.temporaryDirectory.appendingPathComponent("prunesweep-selftest-\(getpid())"))
        let checks = test.run { check, error in
            let verdict = check.passed ? "pass" : "FAIL"
            say("\(verdict)  \(check.name): \(String(format: "%.3g", check.value)) (limit \(String(format: "%.3g", check.limit)))\(error.map { " — \($0)" } ?? "")")
        }
        let failed = checks.filter { !$0.passed }.count
        say(failed == 0 ? "selftest: all \(checks.count) checks passed on \(gpu.info.summary)" : "selftest: \(failed) of \(checks.count) checks FAILED")
        var algorithms: [String: [String]] = [:]
        do {
            algorithms = try test.convolutionAlgorithms()
            for (configuration, lines) in algorithms.sorted(by: { $0.key < $1.key }) {
                say("cuDNN algorithms for \(configuration) (heuristic order, first deterministic):")
                lines.forEach { say("  \($0)") }
            }
        } catch {
            say("cuDNN algorithms could not be listed: \(error)")
        }
        if let json { try writeJSON(SelfTestReport(device: gpu.info, checks: checks, algorithms: algorithms), to: json) }
        if failed > 0 { throw ExitCode(1) }
    }

    /// `BIN/../share/fixtures/resnet18_w8_train.safetensors` (the bundle's layout), if present.
    static func bundledFixture(beside executable: URL) -> URL? {
        let url = executable.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("share/fixtures/resnet18_w8_train.safetensors")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}

/// The `--json` file of `worker selftest`.
struct SelfTestReport: Encodable {
    var device: CUDADevice.Info
    var checks: [DeviceSelfTest.Check]
    /// The convolution algorithms `worker bench` would choose, keyed "PRECISION-BATCH".
    var algorithms: [String: [String]]

    enum CodingKeys: String, CodingKey { case device, checks, algorithms }
    enum CheckKeys: String, CodingKey { case name, value, limit, passed }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(device, forKey: .device)
        try container.encode(algorithms, forKey: .algorithms)
        var list = container.nestedUnkeyedContainer(forKey: .checks)
        for check in checks {
            var entry = list.nestedContainer(keyedBy: CheckKeys.self)
            try entry.encode(check.name, forKey: .name)
            // JSON has no infinity: a check that could not run reports null.
            try entry.encode(check.value.isFinite ? check.value : nil, forKey: .value)
            try entry.encode(check.limit, forKey: .limit)
            try entry.encode(check.passed, forKey: .passed)
        }
    }
}
