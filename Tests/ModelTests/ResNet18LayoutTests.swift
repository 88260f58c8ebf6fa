import Foundation
import Testing
@testable import Model

/// The layout a coordinator checks files against instead of building the network.
@Suite struct ResNet18LayoutTests {
    static let architectures = [
        ResNet18.Architecture(width: 4),
        ResNet18.Architecture(width: 16, inputChannels: 1, classes: 7),
        ResNet18.Architecture(width: 8, blocksPerStage: [1, 3]),
    ]

    @Test(arguments: architectures) func namesShapesAndPrunableTensorsAreTheNetworksOwn(_ architecture: ResNet18.Architecture) {
        let network = ResNet18(architecture), layout = ResNet18.Layout(architecture)
        #expect(layout.state.map(\.name) == network.state.map(\.name))
        #expect(layout.state.map(\.shape) == network.state.map(\.tensor.shape))
        #expect(layout.prunable.map(\.name) == network.prunableParameters.map(\.name))
        #expect(MaskSet(onesFor: layout) == MaskSet(onesFor: network))
    }

    @Test func aFileIsCheckedForEveryTensorsNameShapeAndType() throws {
        let architecture = ResNet18.Architecture(width: 4), layout = ResNet18.Layout(architecture)
        let network = ResNet18(architecture)
        network.initialise(seed: 1)
        var file = Safetensors()
        network.addState(to: &file)
        try layout.check(file, source: "weights")
        func refusal(_ change: (inout Safetensors) -> Void) -> String? {
            var changed = file
            change(&changed)
            do { try layout.check(changed, source: "weights") } catch { return error.description }
            return nil
        }
        #expect(refusal { $0.entries["layer2.0.shortcut.1.running_var"] = nil }?.contains("has no tensor layer2.0.shortcut.1.running_var") == true)
        #expect(refusal { $0.entries["linear.weight"]?.shape = [10, 16] }?.contains("linear.weight has shape [10, 16]") == true)
        #expect(refusal { $0.add("bn1.bias", shape: [4], doubles: [0, 0, 0, 0]) }?.contains("bn1.bias is F64, expected F32") == true)
        // A wider network's file is refused by its first tensor.
        let wide = ResNet18(ResNet18.Architecture(width: 8))
        var wideFile = Safetensors()
        wide.addState(to: &wideFile)
        #expect(throws: ModelError.self) { try layout.check(wideFile, source: "weights") }
    }
}
