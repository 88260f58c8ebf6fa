extension ResNet18 {
    /// The names and shapes of a network's state (`state`: parameters in `state_dict` order,
    /// then the BatchNorm buffers) worked out from its architecture without building it: a
    /// width-64 ResNet18 allocates three copies of 11 M parameters, so a coordinator that
    /// checks a result's files against the network's shapes asks the layout instead.
    public struct Layout: Sendable, Equatable {
        /// One tensor of the state.
        public struct Entry: Sendable, Equatable {
            /// Its PyTorch `state_dict` name and shape; whether pruning masks it.
            public var name: String, shape: [Int], prunable: Bool
        }

        /// The architecture laid out.
        public let architecture: Architecture
        /// Every tensor of the state, in the order of `ResNet18.state`.
        public let state: [Entry]

        /// The layout of a network of `architecture`.
        public init(_ architecture: Architecture) {
            self.architecture = architecture
            var parameters: [Entry] = [], buffers: [Entry] = []
            func convolution(_ name: String, _ inChannels: Int, _ outChannels: Int, _ kernel: Int) {
                parameters.append(Entry(name: name, shape: [outChannels, inChannels, kernel, kernel], prunable: true))
            }
            func batchNorm(_ prefix: String, _ channels: Int) {
                parameters += [Entry(name: prefix + ".weight", shape: [channels], prunable: false),
                               Entry(name: prefix + ".bias", shape: [channels], prunable: false)]
                buffers += [Entry(name: prefix + ".running_mean", shape: [channels], prunable: false),
                            Entry(name: prefix + ".running_var", shape: [channels], prunable: false)]
            }
            let w = architecture.width
            convolution("conv1.weight", architecture.inputChannels, w, 3)
            batchNorm("bn1", w)
            var inPlanes = w
            for (stage, count) in architecture.blocksPerStage.enumerated() {
                let planes = w << stage
                for index in 0..<count {
                    let prefix = "layer\(stage + 1).\(index)", stride = index == 0 && stage > 0 ? 2 : 1
                    convolution(prefix + ".conv1.weight", inPlanes, planes, 3)
                    batchNorm(prefix + ".bn1", planes)
                    convolution(prefix + ".conv2.weight", planes, planes, 3)
                    batchNorm(prefix + ".bn2", planes)
                    if stride != 1 || inPlanes != planes {
                        convolution(prefix + ".shortcut.0.weight", inPlanes, planes, 1)
                        batchNorm(prefix + ".shortcut.1", planes)
                    }
                    inPlanes = planes
                }
            }
            parameters += [Entry(name: "linear.weight", shape: [architecture.classes, inPlanes], prunable: true),
                           Entry(name: "linear.bias", shape: [architecture.classes], prunable: false)]
            state = parameters + buffers
        }

        /// The prunable tensors, in `state_dict` order.
        public var prunable: [Entry] { state.filter(\.prunable) }

        /// Checks that `file` holds every tensor of the state as `prefix + name`, float32, of
        /// the right shape (what `loadState` needs); the error names the first that is not.
        public func check(_ file: Safetensors, prefix: String = "", source: String) throws(ModelError) {
            for entry in state {
                guard let stored = file.entries[prefix + entry.name] else {
                    throw .invalidCheckpoint("\(source) has no tensor \(prefix + entry.name); is it a ResNet18 of width \(architecture.width) with PyTorch state_dict names?")
                }
                guard stored.shape == entry.shape else {
                    throw .invalidCheckpoint("\(source): \(prefix + entry.name) has shape \(stored.shape), this network (width \(architecture.width), \(architecture.inputChannels) input channels, \(architecture.classes) classes) needs \(entry.shape)")
                }
                guard stored.dtype == "F32" else { throw .invalidCheckpoint("\(prefix + entry.name) is \(stored.dtype), expected F32") }
            }
        }
    }
}
