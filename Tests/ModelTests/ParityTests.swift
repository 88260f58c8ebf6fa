import Foundation
import Testing
@testable import Model

/// PyTorch parity on the width-8 fixture: train-mode forward, loss, every gradient, two SGD
/// steps (parameters and BN buffers) and an eval-mode forward.
@Suite struct ParityTests {
    let fixture = Fixtures.training
    let network = ResNet18(.init(width: 8, inputChannels: 3, classes: 10))
    let inputSpace = Workspace()

    func forwardLoss(training: Bool) throws -> (FeatureMap, CrossEntropy.Result, CrossEntropy) {
        let input = try fixture.tensor("input")
        let labels = try fixture.integers("target").map(Int32.init)
        let x = FeatureMap.channelMajor(fromNCHW: input.pointer, batch: 4, channels: 3, height: 32, width: 32, into: inputSpace)
        let logits = network.forward(x, training: training)
        let loss = CrossEntropy()
        let result = labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) }
        return (logits, result, loss)
    }

    func expectState(_ prefix: String, tolerance: Double) throws {
        var worst = 0.0
        for (name, tensor) in network.state {
            let error = relativeError(tensor.array, try fixture.tensor(prefix + name).array)
            worst = max(worst, error)
            #expect(error < tolerance, "\(prefix)\(name): relative error \(error)")
        }
        print("parity: worst \(prefix)* relative error \(worst)")
    }

    /// Run with the default column chunks (one per batch at this size) and with one image per chunk.
    @Test(arguments: [Conv2d.defaultColumnChunkElements, 1])
    func trainingMatchesPyTorch(columnChunkElements: Int) throws {
        for conv in network.convolutions { conv.columnChunkElements = columnChunkElements }
        try network.loadState(from: fixture, prefix: "init.", source: "fixture")
        let sgd = SGD(momentum: 0.9, weightDecay: 5e-4)

        let (logits, first, loss) = try forwardLoss(training: true)
        let logitError = relativeError(logits.nchwArray, try fixture.tensor("train.logits").array)
        #expect(logitError < 1e-4, "train.logits relative error \(logitError)")
        let lossError = abs(first.loss - Double(try fixture.tensor("train.loss")[0])) / 2.2412314
        #expect(lossError < 1e-4, "train.loss \(first.loss)")

        network.backward(loss.backward(like: logits))
        var worstGradient = 0.0
        for parameter in network.parameters {
            let error = relativeError(parameter.gradient.array, try fixture.tensor("grad." + parameter.name).array)
            worstGradient = max(worstGradient, error)
            #expect(error < 1e-4, "grad.\(parameter.name): relative error \(error)")
        }
        print("parity: train.logits \(logitError), worst gradient \(worstGradient)")

        sgd.step(network.parameters, learningRate: 0.1, firstStep: true)
        try expectState("step1.", tolerance: 1e-5)

        let (logits2, second, loss2) = try forwardLoss(training: true)
        let step2LossError = abs(second.loss - Double(try fixture.tensor("step2.loss")[0])) / 1.2067238
        #expect(step2LossError < 1e-4, "step2.loss \(second.loss)")
        network.backward(loss2.backward(like: logits2))
        sgd.step(network.parameters, learningRate: 0.1, firstStep: false)
        try expectState("step2.", tolerance: 1e-5)

        let (evalLogits, _, _) = try forwardLoss(training: false)
        let evalError = relativeError(evalLogits.nchwArray, try fixture.tensor("eval.logits").array)
        print("parity: eval.logits \(evalError), train.loss \(lossError), step2.loss \(step2LossError)")
        #expect(evalError < 1e-4, "eval.logits relative error \(evalError)")
    }

    @Test func parameterCountsMatchThePaper() {
        let paper = ResNet18(.init(width: 64, inputChannels: 3, classes: 10))
        #expect(paper.parameterCount == 11_173_962)
        #expect(paper.prunableParameters.count == 21)
        #expect(paper.prunableParameters.reduce(0) { $0 + $1.value.count } == 11_164_352)
        #expect(network.parameterCount == 176_402)
        #expect(network.parameters.count == 62)
        #expect(network.buffers.count == 40)
        #expect(paper.multiplyAddsPerImage(height: 32, width: 32) == 555_422_720)
    }
}
