import Foundation
import Testing
@testable import Model

/// ‖a − b‖ / ‖b‖ in Double.
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) elements")
    var difference = 0.0, norm = 0.0
    for (x, y) in zip(a, b) {
        difference += Double(x - y) * Double(x - y)
        norm += Double(y) * Double(y)
    }
    return (difference / Swift.max(norm, 1e-300)).squareRoot()
}

/// The PyTorch fixtures copied from `shared/fixtures` (see `Fixtures/README.md`).
enum Fixtures {
    /// Parsed once per test process; several suites read it.
    static let training = load("resnet18_w8_train")
    static let synflow = load("resnet18_w8_synflow")

    private static func load(_ name: String) -> Safetensors {
        let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures")!
        return try! Safetensors(contentsOf: url)
    }
}
