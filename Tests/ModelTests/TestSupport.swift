import Foundation
import Testing
@testable import Model

/// ‖a − b‖ / ‖b‖ in Double (the GPU self-test's measure, so both report the same number).
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) elements")
    return GPUParity.relativeError(a, b)
}

/// The PyTorch fixtures copied from `shared/fixtures` (see `Fixtures/README.md`).
enum Fixtures {
    /// Parsed once per test process; several suites read it.
    static let training = load("resnet18_w8_train")
    static let synflow = load("resnet18_w8_synflow")
    /// The width-64 network's first-step BatchNorm gradients in float64 (`scripts/bn_gradient_reference.py`).
    static let batchNormGradients = load("resnet18_w64_bn_gradients")

    private static func load(_ name: String) -> Safetensors {
        let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures")!
        return try! Safetensors(contentsOf: url)
    }
}
