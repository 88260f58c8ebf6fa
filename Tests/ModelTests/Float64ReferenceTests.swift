import Foundation
import Testing
@testable import Model

/// The first training step of the paper's width-64 network against PyTorch in float64, on the
/// same initial weights (our seed-0 initialisation, which the fixture's script reproduces bit
/// for bit) and the same synthetic images: the BatchNorm parameters' gradients, whose sums
/// over a whole batch cancel heavily, must be no further from float64 than twice PyTorch
/// float32's distance (stored with the fixture by `scripts/bn_gradient_reference.py`).
@Suite struct Float64ReferenceTests {
    let fixture = Fixtures.batchNormGradients

    @Test(.timeLimit(.minutes(10)), arguments: [64])
    func batchNormGradientsAsCloseToFloat64AsPyTorch(batch: Int) throws {
        let network = ResNet18(.init(width: 64, inputChannels: 3, classes: 10))
        network.initialise(seed: 0)
        let parameterSum = network.parameters.reduce(0.0) { total, parameter in
            total + parameter.value.array.reduce(0.0) { $0 + Double($1) }
        }
        let expectedSum = try fixture.doubles("init.checksum")[0]
        try #require(abs(parameterSum - expectedSum) < 1e-6, "initial weights differ from the fixture's (sum \(parameterSum) vs \(expectedSum)): regenerate it with scripts/bn_gradient_reference.py")

        var random = RandomStream(seed: 0, stream: .synthetic)
        let pixels = (0..<(128 * 3 * 32 * 32)).map { _ in random.nextSymmetric(1) }
        let expectedInput = try fixture.doubles("input.checksum")[0]
        try #require(abs(pixels.reduce(0.0) { $0 + Double($1) } - expectedInput) < 1e-6, "the synthetic images differ from the fixture's")
        let labels = (0..<batch).map { Int32($0 % 10) }
        let space = Workspace()
        let x = pixels.withUnsafeBufferPointer {
            FeatureMap.channelMajor(fromNCHW: $0.baseAddress!, batch: batch, channels: 3, height: 32, width: 32, into: space)
        }
        let logits = network.forward(x, training: true)
        let loss = CrossEntropy()
        let result = labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) }
        network.backward(loss.backward(like: logits))
        let referenceLoss = try fixture.doubles("b\(batch).loss")[0]
        let logitError = relativeError(logits.nchwArray.map(Double.init), try fixture.doubles("b\(batch).logits"))
        print("float64 reference, batch \(batch): logits relative error \(logitError)")

        let errors = try network.batchNorms.flatMap { [$0.weight, $0.bias] }.map { parameter in
            relativeError(parameter.gradient.array.map(Double.init), try fixture.doubles("b\(batch).grad.\(parameter.name)"))
        }
        // The fixture keeps every k-th element of each convolution's weight gradient.
        let convolutionErrors = try network.convolutions.map { conv in
            let gradient = conv.weight.gradient.array
            let sample = stride(from: 0, to: gradient.count, by: max(1, gradient.count / 512)).map { Double(gradient[$0]) }
            return relativeError(sample, try fixture.doubles("b\(batch).grad_sample.\(conv.weight.name)"))
        }
        let torch = try ["median", "worst", "conv_median", "conv_worst"].map { try fixture.doubles("b\(batch).torch_f32.\($0)")[0] }
        print("float64 reference, batch \(batch): BN gradients median \(median(errors)), worst \(errors.max() ?? 0) "
              + "(PyTorch float32 \(torch[0]), \(torch[1])); conv weight gradients median \(median(convolutionErrors)), "
              + "worst \(convolutionErrors.max() ?? 0) (PyTorch float32 \(torch[2]), \(torch[3])); loss \(result.loss) vs \(referenceLoss)")
        #expect(abs(result.loss - referenceLoss) < 1e-5 * referenceLoss)
        #expect(median(errors) <= 2 * torch[0], "median BN gradient error \(median(errors)) is more than twice PyTorch float32's \(torch[0])")
        #expect(median(convolutionErrors) <= 2 * torch[2], "median conv weight gradient error \(median(convolutionErrors)) is more than twice PyTorch float32's \(torch[2])")
    }

    /// ‖a − b‖ / ‖b‖ against a float64 reference.
    private func relativeError(_ ours: [Double], _ reference: [Double]) -> Double {
        precondition(ours.count == reference.count, "\(ours.count) vs \(reference.count) elements")
        let difference = zip(ours, reference).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        return (difference / reference.reduce(0.0) { $0 + $1 * $1 }).squareRoot()
    }

    /// numpy's median: the mean of the middle two of an even count.
    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted(), middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
