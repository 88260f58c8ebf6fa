import Foundation
import Testing
@testable import Model

/// Evaluation on the direct kernels for layers that train through GEMM
/// (`EvaluationRouteSelection`, `Conv2d.evaluatesDirect`): the outputs against the GEMM route,
/// which layers have a choice, the rule, the cache, a resumed run's record and the override.
@Suite struct EvaluationRouteSelectionTests {
    /// A width-48 network on 32² images: every 3×3 layer is wider than training's direct
    /// limits somewhere (48 channels on 32², 96 on 16², 192 and 384 on 8² and 4²), and every
    /// channel count is a multiple of 16, so the stride-2 layers have pixel kernels too.
    static func width48() -> ResNet18 {
        let network = ResNet18(.init(width: 48, inputChannels: 3, classes: 10))
        network.initialise(seed: 0)
        return network
    }

    /// A wide layer's evaluation pass on the direct kernels, with BatchNorm, ReLU or the residual
    /// sum in their epilogue, equals training's route (im2col + GEMM, then the BatchNorm pass) to
    /// float32 rounding: the products are summed in another order, so some bits differ, which
    /// also shows that the direct route ran (from 16 input channels: the stem's 27 products may
    /// be summed in the direct kernels' order by a GEMM that does not split them, as OpenBLAS
    /// does on an AMD EPYC, and then every bit agrees). Arguments (residual, in, out, stride, side): the stem
    /// and stage 1 of width 64 on the row kernel, the downsampling layers on the stride-2 pixel
    /// kernels, stages 3 and 4 on the stride-1 pixel kernels, and a remainder of 8 channels on the
    /// row kernel beside them.
    @Test(arguments: [(false, 3, 64, 1, 32), (true, 64, 64, 1, 32), (false, 64, 128, 2, 32), (false, 128, 256, 2, 16),
                      (true, 256, 256, 1, 8), (false, 256, 512, 2, 8), (true, 512, 512, 1, 4), (true, 144, 136, 1, 7)])
    func directEvaluationEqualsTheGEMMRoute(_ shape: (Bool, Int, Int, Int, Int)) throws {
        let (residual, c, o, stride, side) = shape
        let conv = Conv2d(name: "conv.weight", inChannels: c, outChannels: o, kernel: 3, stride: stride, padding: 1)
        try #require(conv.runsDirectForward(width: side) || Conv2d.availableDirectLevel < 2, "AVX-512 covers every argument")
        guard conv.runsDirectForward(width: side) else { return }
        #expect(!conv.runsDirect(width: side), "training runs this layer direct already: nothing to compare")
        GradientCheckTests.randomise(conv.weight, seed: 51, scale: 0.1)
        let bn = FusedKernelTests.evaluationBatchNorm(channels: o, appliesReLU: !residual)
        let outputSide = conv.outputExtent(side)
        let x = GradientCheckTests.Map(c, 2, side, side, seed: 54), skip = GradientCheckTests.Map(o, 2, outputSide, outputSide, seed: 55)
        let plainOutput = bn.forward(conv.forward(x.map), training: false, residual: residual ? skip.map : nil)
        let plain = Array(UnsafeBufferPointer(start: plainOutput.data, count: plainOutput.count))
        conv.evaluatesDirect = true
        let direct = conv.forward(x.map, normalisedBy: bn, training: false, residual: residual ? skip.map : nil)
        defer { withExtendedLifetime((conv, bn)) {} }
        try #require(direct.count == plain.count)
        let largest = plain.reduce(0) { Swift.max($0, abs($1)) }
        var worst: Float = 0, differing = 0
        for i in 0..<plain.count {
            worst = Swift.max(worst, abs(direct.data[i] - plain[i]))
            if direct.data[i].bitPattern != plain[i].bitPattern { differing += 1 }
        }
        #expect(worst <= 2e-6 * Swift.max(largest, 1), "largest difference \(worst) for outputs up to \(largest)")
        #expect(differing > 0 || c < 16, "every output has the GEMM route's bits: the direct route did not run")
    }

    /// The whole network's logits in evaluation, every covered layer direct against none.
    @Test func networkLogitsMatchEitherRoute() throws {
        let network = Self.width48()
        let x = GradientCheckTests.Map(3, 2, 32, 32, seed: 56)
        func logits(_ mode: String) throws -> [Float] {
            _ = try EvaluationRouteSelection.install(on: network, batch: 2, height: 32, width: 32,
                                                     environment: [EvaluationRouteSelection.variable: mode], cache: nil)
            let y = network.forward(x.map, training: false)
            return Array(UnsafeBufferPointer(start: y.data, count: y.count))
        }
        let gemm = try logits("off"), direct = try logits("on")
        #expect(network.convolutions.contains { $0.evaluatesDirect } == (Conv2d.availableDirectLevel > 0))
        let largest = gemm.reduce(0) { Swift.max($0, abs($1)) }
        for (a, b) in zip(gemm, direct) { #expect(abs(a - b) <= 1e-5 * Swift.max(largest, 1), "\(a) against \(b)") }
    }

    /// Which layers have a choice: those the direct kernels cover and training runs through
    /// GEMM. Width 16 with AVX-512 runs every 3×3 layer direct already and has none.
    @Test func onlyLayersThatTrainThroughGEMMHaveAChoice() throws {
        let wide = EvaluationRouteSelection.candidates(Self.width48(), height: 32, width: 32)
        for (conv, _, width) in wide { #expect(conv.runsDirectForward(width: width) && !conv.runsDirect(width: width)) }
        #expect(wide.allSatisfy { $0.conv.kernel == 3 }, "the 1×1 shortcuts stay on GEMM")
        if Conv2d.availableDirectLevel == 2 {
            #expect(wide.count == 17, "the stem and all 16 3×3 block layers: \(wide.map { $0.conv.weight.name })")
            let narrow = ResNet18(.init(width: 16, inputChannels: 3, classes: 10))
            let none = try EvaluationRouteSelection.install(on: narrow, batch: 8, height: 32, width: 32, environment: [:], cache: nil)
            #expect(none.directLayers.isEmpty && none.line == nil)
        }
    }

    @Test func directOnlyWhenClearlyFaster() {
        func verdict(gemm: Double, direct: Double) -> EvaluationRouteSelection.Verdict {
            .init(gemmSeconds: gemm, directSeconds: direct, agreed: true, measuredAt: Date(), othersBusyShare: 0)
        }
        #expect(!verdict(gemm: 1.0, direct: 0.97).direct, "3% is within noise")
        #expect(verdict(gemm: 1.0, direct: 0.9).direct)
        #expect(abs(verdict(gemm: 1.0, direct: 0.8).gain - 1.25) < 1e-12)
        #expect(!verdict(gemm: 1.0, direct: 1.3).direct)
    }

    @Test func measuredOncePerShapeThenReadFromTheCache() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("evaluation-routes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = folder.appendingPathComponent("verdicts.json")
        let network = Self.width48()
        let candidates = EvaluationRouteSelection.candidates(network, height: 32, width: 32)
        guard !candidates.isEmpty else { return }  // no direct kernels on this CPU
        let first = try EvaluationRouteSelection.install(on: network, batch: 2, height: 32, width: 32, environment: [:], cache: cache)
        let line = try #require(first.line)
        #expect(line.contains("timed now"), "\(line)")
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let measured = try decoder.decode(EvaluationRouteSelection.VerdictFile.self, from: Data(contentsOf: cache))
        let shapes = Set(candidates.map { EvaluationRouteSelection.layerKey($0.conv, height: $0.height, width: $0.width, batch: 2) })
        #expect(Set(measured.layers.keys) == shapes, "one verdict per distinct shape")
        #expect(measured.layers.values.allSatisfy { $0.gemmSeconds > 0 && $0.directSeconds > 0 })
        let expected = candidates.filter { measured.layers[EvaluationRouteSelection.layerKey($0.conv, height: $0.height, width: $0.width, batch: 2)]!.direct }
        #expect(first.directLayers == expected.map { $0.conv.weight.layerName })
        #expect(network.convolutions.filter(\.evaluatesDirect).map { $0.weight.layerName } == first.directLayers)

        // A kept verdict decides without measuring again: make GEMM clearly faster everywhere.
        var file = measured
        file.layers = file.layers.mapValues { var v = $0; v.gemmSeconds = 1; v.directSeconds = 2; return v }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(file).write(to: cache)
        let again = try EvaluationRouteSelection.install(on: network, batch: 2, height: 32, width: 32, environment: [:], cache: cache)
        #expect(again.directLayers.isEmpty && network.convolutions.allSatisfy { !$0.evaluatesDirect })
        #expect(again.line?.contains("kept in verdicts.json") == true, "\(again.line ?? "")")
    }

    @Test func aResumedRunKeepsItsRoutesAndTheOverrideSetsEveryLayer() throws {
        let network = Self.width48()
        guard !EvaluationRouteSelection.candidates(network, height: 32, width: 32).isEmpty else { return }
        let resumed = try EvaluationRouteSelection.install(on: network, batch: 2, height: 32, width: 32, fixed: ["layer2.0.conv2"],
                                                           environment: [EvaluationRouteSelection.variable: "on"], cache: nil)
        #expect(resumed.directLayers == ["layer2.0.conv2"], "the checkpoint's record wins over the variable")
        #expect(network.convolutions.filter(\.evaluatesDirect).map { $0.weight.layerName } == ["layer2.0.conv2"])
        let on = try EvaluationRouteSelection.install(on: network, batch: 2, height: 32, width: 32,
                                                      environment: [EvaluationRouteSelection.variable: "on"], cache: nil)
        #expect(on.directLayers.count == EvaluationRouteSelection.candidates(network, height: 32, width: 32).count)
        let off = try EvaluationRouteSelection.install(on: network, batch: 2, height: 32, width: 32,
                                                       environment: [EvaluationRouteSelection.variable: "OFF"], cache: nil)
        #expect(off.directLayers.isEmpty && network.convolutions.allSatisfy { !$0.evaluatesDirect })
        #expect(throws: ModelError.self) {
            try EvaluationRouteSelection.install(on: network, batch: 2, height: 32, width: 32,
                                                 environment: [EvaluationRouteSelection.variable: "sometimes"], cache: nil)
        }
    }
}
