import Foundation
import Model
import TaskRuntime

/// What produced a report, for its top: the sweep, the preset and what was overridden, the
/// data, epochs and seeds, where it ran, how long it took, the code, and the command that
/// reproduces it. Everything is read from the sweep, its journal and its results.
public struct Provenance: Sendable {
    /// The sweep and its preset with the overrides applied.
    public var sweep: SweepSpec, preset: Preset
    /// The accepted results, and the labels of every reported task of the plan.
    public var records: [ResultRecord], planned: [TaskSpec.Labels]
    /// Every attempt of every task (for the wall time).
    public var attempts: [Journal.Attempt]
    /// The run directory.
    public var runDirectory: URL

    /// The overridden preset fields as `FIELD=VALUE`, sorted: VALUE as JSON, a word bare (as `--set` takes it).
    var overrides: [String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(sweep.overrides),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [] }
        return object.keys.sorted().compactMap { key in
            guard let value = object[key] else { return nil }
            if let word = value as? String, (try? JSONSerialization.jsonObject(with: Data(word.utf8), options: .fragmentsAllowed)) == nil {
                return "\(key)=\(word)"
            }
            guard let json = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes]) else { return nil }
            return "\(key)=\(String(decoding: json, as: UTF8.self))"
        }
    }

    /// The label-value lines.
    public var facts: [(label: String, value: String)] {
        let training = preset.training
        var facts: [(label: String, value: String)] = [
            ("Sweep", "\(sweep.name): \(records.count) of \(planned.count) training results"),
            ("Preset", preset.name + (overrides.isEmpty ? " (no field overridden)" : "; overridden: " + overrides.joined(separator: ", "))),
            ("Experiments", sweep.outline),
            ("Dataset", "\(training.dataset.rawValue): \(Self.sizes(training)); ResNet18 width \(training.width)"),
            ("Epochs", "\(training.epochs) (\(Self.describe(training.schedule)) schedule, learning rate \(training.learningRate), batch \(training.batchSize))"
                + (planned.contains { $0.method == "han" } ? "; Han fine-tunes \(preset.hanEpochs) at learning rate \(preset.hanLearningRate)" : "")),
            ("Seeds", seeds),
            ("Ran on", machines),
            ("Time", time),
            ("Code", code),
        ]
        if let precision = training.precision { facts.insert(("Precision", precision.rawValue), at: 4) }
        return facts
    }

    /// Image counts as the worker loads them: training after the validation split and limit.
    static func sizes(_ training: TrainingConfig) -> String {
        let full: (train: Int, test: Int) = switch training.dataset {
        case .cifar10: (50_000 - training.validationSize, 10_000)
        case .fashionMNIST: (60_000 - training.validationSize, 10_000)
        case .synthetic: (training.synthetic?.trainCount ?? 512, training.synthetic?.testCount ?? 128)
        }
        let train = min(full.train, training.trainLimit ?? .max), test = min(full.test, training.testLimit ?? .max)
        return "\(train) training, \(training.validationSize) validation, \(test) test images"
    }

    static func describe(_ schedule: LearningRateSchedule) -> String {
        switch schedule {
        case .cosine: "cosine"
        case .constant: "constant"
        case .multiStep(let milestones, let gamma): "multi-step at \(milestones.map(String.init).joined(separator: ", ")) × \(gamma)"
        }
    }

    /// Every seed, and for those short of results how many are missing.
    var seeds: String {
        sweep.seeds.map { seed in
            let missing = planned.filter { $0.seed == seed }.count - records.filter { $0.seed == seed }.count
            return missing > 0 ? "\(seed) (\(missing) result\(missing == 1 ? "" : "s") missing)" : "\(seed)"
        }.joined(separator: ", ")
    }

    /// Workers, hosts and devices of the results, with how many results each device gave.
    var machines: String {
        guard !records.isEmpty else { return "nothing yet" }
        let workers = Set(records.map(\.worker)).sorted(), hosts = Set(records.map(\.host)).sorted()
        let devices = Dictionary(grouping: records) { record in
            let device = record.device ?? "cpu"
            let detail = device == "cpu" ? "BLAS \(record.blasCore)" : (record.precision ?? "")
            return "\(device) (\(detail))" + (record.gpu.map { " CUDA_VISIBLE_DEVICES=\($0)" } ?? "")
        }.sorted { $0.key < $1.key }.map { "\($0.key) × \($0.value.count)" }
        return "\(workers.count) worker(s) (\(workers.joined(separator: ", "))) on \(hosts.joined(separator: ", ")); devices: \(devices.joined(separator: ", "))"
    }

    /// From the first attempt's start to the last attempt's end, and the trainings' own time.
    var time: String {
        let training = records.reduce(0) { $0 + $1.wallSeconds }
        guard let first = attempts.map(\.started).min() else { return "nothing ran yet" }
        let last = attempts.map { $0.ended ?? Date().timeIntervalSince1970 }.max() ?? first
        return "wall \(Self.duration(last - first)) (first task started to last ended, across coordinator runs); training \(Self.duration(training)) summed over \(records.count) training(s)"
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 120 ? String(format: "%.0f s", seconds) : String(format: "%.0f s (%.1f min)", seconds, seconds / 60)
    }

    /// The code that produced the results: the builds the results were trained by (their git
    /// commits, dirty ones marked) and the build that wrote this report.
    var code: String {
        let trained = records.isEmpty ? "no results yet" : "results from " + BuildProvenance.line(for: records)
        return "\(trained); this report written by commit \(BuildProvenance.coordinator)"
    }

    /// The coordinator command that reruns (or resumes) the sweep: the built-in by name with
    /// its preset and overrides, or for any other sweep the `sweep.json` written beside the report.
    public var command: String {
        var arguments = ["coordinator", "--sweep"]
        var builtIn = SweepSpec.builtIn[sweep.name]
        builtIn?.preset = sweep.preset
        builtIn?.overrides = sweep.overrides
        builtIn?.about = sweep.about
        if builtIn == sweep, let original = SweepSpec.builtIn[sweep.name] {
            arguments.append(sweep.name)
            if sweep.preset != original.preset { arguments += ["--preset", sweep.preset] }
            arguments += overrides.flatMap { ["--set", SSHCommand.word($0)] }
        } else {
            arguments.append(SSHCommand.word(runDirectory.appendingPathComponent("sweep.json").path))
        }
        let defaultDirectory = URL(fileURLWithPath: "runs/\(sweep.name)").standardizedFileURL.path
        if runDirectory.standardizedFileURL.path != defaultDirectory { arguments += ["--run-dir", SSHCommand.word(runDirectory.path)] }
        return (arguments + ["--cluster", "cluster.json"]).joined(separator: " ")
    }
}
