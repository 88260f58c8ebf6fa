import Foundation
import Testing
@testable import Model

/// The per-layer choice of column-chunk budgets (`ColumnChunkSelection`): which layers have a
/// choice, the rule that keeps the default, the cache, a resumed run's record and the override.
@Suite struct ColumnChunkSelectionTests {
    /// A width-40 network on 16² images at batch 32: its four stage-1 layers (40 channels each
    /// way, 90 Ki column elements per image, 11 MiB for 32 images) are wide and make 2 chunks
    /// under 8 MiB and 1 under the larger budgets; every other layer fits one chunk whatever
    /// the budget, or is narrow.
    static func width40() -> ResNet18 {
        let network = ResNet18(.init(width: 40, inputChannels: 1, classes: 10))
        network.initialise(seed: 0)
        return network
    }

    static let stageOne = ["layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2"]

    @Test func budgetsThatChunkAlikeCountOnce() {
        let wide = Conv2d(name: "wide.weight", inChannels: 64, outChannels: 64, kernel: 3, padding: 1)
        #expect(ColumnChunkSelection.distinctBudgets(wide, batch: 128, height: 32, width: 32) == [8, 16, 32, 64],
                "2.25 MiB of columns per image: 43, 19, 10 and 5 chunks")
        #expect(ColumnChunkSelection.distinctBudgets(wide, batch: 4, height: 32, width: 32) == [8, 64],
                "4 images: 2 chunks under 8 MiB, 1 under every larger budget (kept as 64)")
        let small = Conv2d(name: "small.weight", inChannels: 512, outChannels: 512, kernel: 3, padding: 1)
        #expect(ColumnChunkSelection.distinctBudgets(small, batch: 8, height: 4, width: 4) == [64])
    }

    @Test func theDefaultStaysUnlessAnotherBudgetIsClearlyFaster() {
        func verdict(_ seconds: [Double]) -> ColumnChunkSelection.Verdict {
            .init(mebibytes: [8, 16, 64], seconds: seconds, agreed: true, measuredAt: Date(), othersBusyShare: 0)
        }
        #expect(verdict([1.0, 0.97, 1.0]).chosen == 64, "3% is within noise")
        #expect(verdict([1.0, 0.9, 1.0]).chosen == 16)
        #expect(abs(verdict([1.0, 0.9, 1.0]).gain - 1.0 / 0.9) < 1e-12)
        #expect(verdict([0.8, 0.9, 1.0]).chosen == 8)
        #expect(verdict([1.2, 1.1, 1.0]).chosen == 64)
    }

    @Test func measuredOncePerShapeThenReadFromTheCache() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("column-chunks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = folder.appendingPathComponent("verdicts.json")

        let network = Self.width40()
        let first = try ColumnChunkSelection.install(on: network, batch: 32, height: 16, width: 16, environment: [:], cache: cache)
        let line = try #require(first.line)
        #expect(line.contains("40>40 k3 s1 p1 16x16"), "the log line names the measured shape: \(line)")
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let measured = try decoder.decode(ColumnChunkSelection.VerdictFile.self, from: Data(contentsOf: cache))
        #expect(measured.layers.count == 1, "the four stage-1 layers share one shape: \(measured.layers.keys.sorted())")
        let verdict = try #require(measured.layers.values.first)
        #expect(verdict.mebibytes == [8, 64] && verdict.seconds.allSatisfy { $0 > 0 })
        for conv in network.convolutions {
            let name = String(conv.weight.name.dropLast(".weight".count))
            let expected = Self.stageOne.contains(name) ? ColumnChunkSelection.elements(verdict.chosen)
                : conv.isNarrow ? Conv2d.narrowColumnChunkElements : Conv2d.defaultColumnChunkElements
            #expect(conv.columnChunkElements == expected, "\(name)")
        }

        // A kept verdict decides without measuring again: make 8 MiB clearly faster.
        var file = measured
        file.layers = file.layers.mapValues { var v = $0; v.seconds = [0.5, 1.0]; return v }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(file).write(to: cache)
        let again = try ColumnChunkSelection.install(on: Self.width40(), batch: 32, height: 16, width: 16, environment: [:], cache: cache)
        #expect(again.budgets == Dictionary(uniqueKeysWithValues: Self.stageOne.map { ($0, 8) }))
        #expect(again.line?.contains("8 MiB (2.00× 64 MiB)") == true, "\(again.line ?? "")")
    }

    @Test func aResumedRunKeepsItsBudgetsAndTheOverrideSetsEveryWideLayer() throws {
        let network = Self.width40()
        let resumed = try ColumnChunkSelection.install(on: network, batch: 32, height: 16, width: 16, fixed: ["layer1.1.conv2": 8],
                                                       environment: [ColumnChunkSelection.variable: "32"], cache: nil)
        #expect(resumed.budgets == ["layer1.1.conv2": 8], "the checkpoint's record wins over the variable")
        for (index, name) in Self.stageOne.enumerated() {
            #expect(network.convolutions[index + 1].weight.name == name + ".weight")
            #expect(network.convolutions[index + 1].columnChunkElements == ColumnChunkSelection.elements(name == "layer1.1.conv2" ? 8 : 64))
        }
        let fresh = try ColumnChunkSelection.install(on: network, batch: 32, height: 16, width: 16,
                                                     environment: [ColumnChunkSelection.variable: "32"], cache: nil)
        #expect(fresh.budgets == Dictionary(uniqueKeysWithValues: Self.stageOne.map { ($0, 32) }))
        #expect(network.convolutions[1...4].allSatisfy { $0.columnChunkElements == ColumnChunkSelection.elements(32) })
        #expect(throws: ModelError.self) {
            try ColumnChunkSelection.install(on: network, batch: 32, height: 16, width: 16,
                                             environment: [ColumnChunkSelection.variable: "lots"], cache: nil)
        }
    }
}
