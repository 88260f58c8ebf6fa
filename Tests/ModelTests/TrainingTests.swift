import Foundation
import Testing
@testable import Model

/// Training on the synthetic set: it learns, it resumes bit-identically, masks hold, and
/// checkpoints reject corruption.
@Suite struct TrainingTests {
    static let config = TrainingConfig(
        dataset: .synthetic, width: 4, epochs: 3, batchSize: 32, learningRate: 0.05, schedule: .cosine,
        validationSize: 64, synthetic: .init(trainCount: 320, testCount: 96, side: 16), seed: 5)

    static func trainer(_ directory: URL, config: TrainingConfig = config, masks: [String: Tensor] = [:]) throws -> Trainer {
        try Trainer(config: config, data: try config.loadData(), directory: directory, masks: masks, log: { _ in })
    }

    @Test func learnsTheSyntheticSet() throws {
        let directory = try DataTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let trainer = try Self.trainer(directory)
        try trainer.run()
        let accuracy = try #require(trainer.history.last?.testAccuracy)
        #expect(accuracy > 0.3, "test accuracy \(accuracy) after 3 epochs (chance is 0.1)")
        for name in ["checkpoint", "best", "weights"] {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(name + ".safetensors").path))
        }
        let summary = try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: directory.appendingPathComponent("metrics.json")))
        #expect(summary.history.count == 3 && summary.identity == Self.config.identity)
        #expect(summary.bestValidationTestAccuracy != nil && summary.bestEpoch != nil)
    }

    @Test func resumeIsBitIdentical() throws {
        let whole = try DataTests.temporaryDirectory(), split = try DataTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: whole); try? FileManager.default.removeItem(at: split) }
        let uninterrupted = try Self.trainer(whole)
        try uninterrupted.run()
        try Self.trainer(split).run(stopAfterEpoch: 1)
        let resumed = try Self.trainer(split)
        #expect(resumed.history.count == 1)
        try resumed.run()
        for (a, b) in zip(uninterrupted.network.state, resumed.network.state) {
            #expect(a.tensor.array == b.tensor.array, "\(a.name) differs after resume")
        }
        for (a, b) in zip(uninterrupted.network.parameters, resumed.network.parameters) {
            #expect(a.momentum.array == b.momentum.array, "momentum of \(a.name) differs after resume")
        }
        #expect(uninterrupted.history.map(\.testAccuracy) == resumed.history.map(\.testAccuracy))
    }

    @Test func masksSurviveTrainingAndResume() throws {
        let directory = try DataTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let probe = ResNet18(.init(width: 4, inputChannels: 3, classes: 10))
        var masks: [String: Tensor] = [:]
        var random = RandomStream(seed: 1, stream: .pruning)
        for parameter in probe.prunableParameters {
            let mask = Tensor(shape: parameter.shape)
            for i in 0..<mask.count { mask[i] = random.nextUnitFloat() < 0.3 ? 1 : 0 }
            masks[parameter.name] = mask
        }
        try Self.trainer(directory, masks: masks).run(stopAfterEpoch: 1)
        let resumed = try Self.trainer(directory, masks: masks)
        try resumed.run()
        for parameter in resumed.network.prunableParameters {
            let mask = try #require(masks[parameter.name])
            #expect(parameter.mask?.array == mask.array, "\(parameter.name) lost its mask")
            for i in 0..<mask.count where mask[i] == 0 {
                #expect(parameter.value[i] == 0 && parameter.momentum[i] == 0, "\(parameter.name)[\(i)] revived")
            }
        }
    }

    @Test func checkpointRejectsCorruptionAndOtherConfigurations() throws {
        let directory = try DataTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let trainer = try Self.trainer(directory)
        try trainer.run(stopAfterEpoch: 1)
        var other = Self.config
        other.seed = 6
        #expect { try Self.trainer(directory, config: other) } throws: { "\($0)".contains("another run") }

        var bytes = try Data(contentsOf: trainer.checkpointURL)
        bytes[bytes.count - 3] ^= 0xff
        try bytes.write(to: trainer.checkpointURL)
        #expect { try Self.trainer(directory) } throws: { "\($0)".contains("checksum") }
        try Data(bytes.prefix(bytes.count / 2)).write(to: trainer.checkpointURL)
        #expect { try Self.trainer(directory) } throws: { "\($0)".contains("truncated") }
    }

    @Test func safetensorsRoundTripAndPyTorchNames() throws {
        let network = ResNet18(.init(width: 8, inputChannels: 3, classes: 10))
        network.initialise(seed: 3)
        var file = Safetensors(metadata: ["k": "v"])
        network.addState(to: &file)
        let copy = try Safetensors(data: file.serialized(), source: "memory")
        #expect(copy.metadata == ["k": "v"])
        #expect(copy.names == file.names)
        #expect(copy.names.contains("layer2.0.shortcut.1.running_var") && copy.names.contains("linear.bias"))
        #expect(Set(copy.names) == Set(Fixtures.training.names.filter { $0.hasPrefix("init.") }.map { String($0.dropFirst(5)) }))
        let other = ResNet18(.init(width: 8, inputChannels: 3, classes: 10))
        try other.loadState(from: copy, source: "memory")
        for (a, b) in zip(network.state, other.state) { #expect(a.tensor.array == b.tensor.array) }
        let wrongWidth = ResNet18(.init(width: 4, inputChannels: 3, classes: 10))
        #expect { try wrongWidth.loadState(from: copy, source: "memory") } throws: { "\($0)".contains("conv1.weight has shape") }
    }

    /// Headers written by hand: an entry without its offsets, and a header that is no object,
    /// are named errors; metadata and an entry in any key order read back.
    @Test func safetensorsHeadersAreCheckedEntryByEntry() throws {
        func file(_ header: String, body: Int) -> Data {
            let json = Data(header.utf8)
            return Data((0..<8).map { UInt8((json.count >> (8 * $0)) & 0xff) }) + json + Data(count: body)
        }
        let read = try Safetensors(data: file(#"{"t": {"shape": [2], "data_offsets": [0, 8], "dtype": "F32"}, "__metadata__": {"format": "pt"}}"#, body: 8),
                                   source: "memory")
        #expect(read.metadata == ["format": "pt"] && read.names == ["t"] && read.entries["t"]?.shape == [2])
        #expect { try Safetensors(data: file(#"{"t": {"dtype": "F32", "shape": [2]}}"#, body: 8), source: "memory") } throws: {
            "\($0)".contains("entry t lacks dtype, shape or data_offsets")
        }
        #expect { try Safetensors(data: file("[1, 2]", body: 0), source: "memory") } throws: { "\($0)".contains("not a JSON object") }
    }

    @Test func initialisationBounds() {
        let network = ResNet18(.init(width: 8, inputChannels: 3, classes: 10))
        network.initialise(seed: 0)
        #expect(network.conv1.weight.value.array.allSatisfy { abs($0) <= 1 / Float(27).squareRoot() })
        #expect(network.linear.bias.value.array.allSatisfy { abs($0) <= 0.125 })
        #expect(network.conv1.weight.value.array.map { abs($0) }.max()! > 0.15)
        #expect(network.bn1.weight.value.array.allSatisfy { $0 == 1 } && network.bn1.runningVar.array.allSatisfy { $0 == 1 })
    }

    @Test func configurationIdentity() {
        var other = Self.config
        #expect(other.identity == Self.config.identity)
        other.epochs += 1
        #expect(other.identity != Self.config.identity)
        var bad = Self.config
        bad.batchSize = 0
        #expect { try bad.validate() } throws: { "\($0)".contains("batchSize") }
    }
}

/// Late rewinding (open_lth semantics): a run started from θK at epoch K follows the
/// uninterrupted run's schedule and data order, with a fresh optimiser.
@Suite struct LateRewindingTests {
    @Test func startEpochFastForwardsScheduleAndDataOrder() throws {
        let whole = try DataTests.temporaryDirectory(), late = try DataTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: whole); try? FileManager.default.removeItem(at: late) }
        let config = TrainingTests.config
        let data = try config.loadData()
        let full = try Trainer(config: config, data: data, directory: whole, snapshotEpochs: [1], log: { _ in })
        try full.run()
        let thetaK = try Safetensors(contentsOf: whole.appendingPathComponent("epoch-1.safetensors"))
        var rewound = config
        rewound.startEpoch = 1
        let branch = try Trainer(config: rewound, data: data, directory: late, initialState: thetaK, log: { _ in })
        try branch.run()
        #expect(branch.history.map(\.epoch) == [2, 3])
        #expect(branch.history[0].learningRate == full.history[1].learningRate)
        let a = try Checkpoint.load(full.checkpointURL, into: ResNet18(full.network.architecture))
        let b = try Checkpoint.load(branch.checkpointURL, into: ResNet18(branch.network.architecture))
        #expect(a.shuffleState == b.shuffleState && a.augmentationState == b.augmentationState)
        #expect(a.optimizerSteps == b.optimizerSteps)
        // A fresh optimiser: the branch's weights differ from the uninterrupted run's.
        #expect(full.network.conv1.weight.value.array != branch.network.conv1.weight.value.array)
    }
}
