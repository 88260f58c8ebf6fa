import Foundation
import Synchronization
import Testing
@testable import Model

/// The sparse engine computes the masked dense step: same logits and loss, the same gradient
/// at every kept weight, exactly zero at pruned ones, whatever the thread count; and the
/// per-layer choice keeps layers dense where sparse cannot win.
@Suite(.serialized) struct SparseEngineTests {
    /// Weight `i` of prunable tensor number `layer` is kept iff its hash falls below the
    /// density: the rule `scripts/sparse_step_reference.py` applies, so a fixture stores 21
    /// densities instead of 11M flags.
    static func hashKeeps(layer: Int, index: Int, density: Double) -> Bool {
        var z = UInt64(layer) << 32 | UInt64(index)
        z = z &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z >> 40 < UInt64(Int(density * 16_777_216))
    }

    static func applyHashMasks(_ network: ResNet18, density: (Int, Parameter) -> Double) throws {
        for (layer, parameter) in network.prunableParameters.enumerated() {
            let d = density(layer, parameter)
            let values = (0..<parameter.value.count).map { hashKeeps(layer: layer, index: $0, density: d) ? Float(1) : 0 }
            try parameter.setMask(Tensor(shape: parameter.shape, values: values))
        }
    }

    /// ‖a − b‖ / ‖b‖ against a float64 reference.
    static func relativeError64(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "\(a.count) vs \(b.count) elements")
        var difference = 0.0, norm = 0.0
        for (x, y) in zip(a, b) {
            difference += (x - y) * (x - y)
            norm += y * y
        }
        return norm == 0 ? difference.squareRoot() : (difference / norm).squareRoot()
    }

    struct Step {
        var logits: [Float], loss: Double, gradients: [String: [Float]], weights: [String: [Float]]
    }

    /// Forward, loss, backward and one SGD step on `network`; `afterForward` sees the network
    /// between its forward and backward passes.
    static func step(_ network: ResNet18, _ x: FeatureMap, labels: [Int32], afterForward: (ResNet18) -> Void = { _ in }) -> Step {
        let loss = CrossEntropy()
        let logits = network.forward(x, training: true)
        afterForward(network)
        let result = labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) }
        let logitValues = logits.nchwArray
        network.backward(loss.backward(like: logits))
        let gradients = Dictionary(uniqueKeysWithValues: network.parameters.map { ($0.name, $0.gradient.array) })
        SGD().step(network.parameters, learningRate: 0.1, firstStep: true)
        let weights = Dictionary(uniqueKeysWithValues: network.parameters.map { ($0.name, $0.value.array) })
        return Step(logits: logitValues, loss: result.loss, gradients: gradients, weights: weights)
    }

    /// Sets every masked convolution sparse (or dense).
    static func setSparse(_ network: ResNet18, _ sparse: Bool) throws {
        for conv in network.convolutions { conv.sparse = sparse && conv.weight.mask != nil ? try SparseConvolution(conv) : nil }
    }

    /// Kept-weight gradients within `tolerance` relative, pruned ones exactly zero.
    static func expectSameStep(_ sparse: Step, _ dense: Step, network: ResNet18, tolerance: Double) {
        let logitError = relativeError(sparse.logits, dense.logits)
        #expect(logitError < tolerance, "logits: relative error \(logitError)")
        #expect(abs(sparse.loss - dense.loss) <= tolerance * abs(dense.loss), "loss \(sparse.loss) vs \(dense.loss)")
        var worst = 0.0
        for parameter in network.parameters {
            let a = sparse.gradients[parameter.name]!, b = dense.gradients[parameter.name]!
            if let mask = parameter.mask?.array, network.convolutions.contains(where: { $0.weight === parameter }) {
                let kept = mask.indices.filter { mask[$0] != 0 }
                let error = relativeError(kept.map { a[$0] }, kept.map { b[$0] })
                worst = max(worst, error)
                #expect(error < tolerance, "\(parameter.name): kept-weight gradient relative error \(error)")
                #expect(mask.indices.allSatisfy { mask[$0] != 0 || a[$0] == 0 }, "\(parameter.name): a pruned weight has a gradient")
                #expect(mask.indices.allSatisfy { mask[$0] != 0 || sparse.weights[parameter.name]![$0] == 0 },
                        "\(parameter.name): a pruned weight moved")
            } else {
                let error = relativeError(a, b)
                worst = max(worst, error)
                #expect(error < tolerance, "\(parameter.name): gradient relative error \(error)")
            }
            let weightError = relativeError(sparse.weights[parameter.name]!, dense.weights[parameter.name]!)
            #expect(weightError < tolerance, "\(parameter.name): weights after the step, relative error \(weightError)")
        }
        print("sparse vs dense: logits \(logitError), worst gradient \(worst)")
    }

    /// The copies into and out of the batch-inner layout move every float to its place: the
    /// halo and the lanes past the batch are zero, and the way back writes or adds each value
    /// once. Odd extents and a short last block take the vector copies' partial tiles.
    @Test func batchInnerCopiesPlaceEveryValue() {
        let lanes = SparseConvolution.blockLanes
        for (height, width, halo) in [(28, 28, 1), (14, 14, 2), (7, 7, 1), (5, 9, 0), (3, 17, 1)] {
            let channels = 3, batch = 21
            let count = channels * batch * height * width
            let source = UnsafeMutablePointer<Float>.allocate(capacity: count)
            let back = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { source.deallocate(); back.deallocate() }
            for i in 0..<count { source[i] = Float(i % 1_000) + 0.25 }
            let x = FeatureMap(data: source, channels: channels, batch: batch, height: height, width: width)
            let paddedHeight = height + 2 * halo, paddedWidth = width + 2 * halo
            let inner = UnsafeMutablePointer<Float>.allocate(capacity: channels * paddedHeight * paddedWidth * lanes)
            let unpadded = UnsafeMutablePointer<Float>.allocate(capacity: channels * height * width * lanes)
            defer { inner.deallocate(); unpadded.deallocate() }
            unpadded.initialize(repeating: .nan, count: channels * height * width * lanes)
            for accumulate in [false, true] {
                for i in 0..<count { back[i] = accumulate ? 1 : .nan }
                let y = x.sameShape(at: back)
                var misplaced = 0
                for first in Swift.stride(from: 0, to: batch, by: lanes) {
                    let images = (first: first, count: Swift.min(lanes, batch - first))
                    inner.initialize(repeating: .nan, count: channels * paddedHeight * paddedWidth * lanes)
                    SparseConvolution.toBatchInner(x, images: images, into: inner, halo: halo)
                    for c in 0..<channels {
                        for row in 0..<paddedHeight {
                            for column in 0..<paddedWidth {
                                for lane in 0..<lanes {
                                    let value = inner[((c * paddedHeight + row) * paddedWidth + column) * lanes + lane]
                                    let (r, q) = (row - halo, column - halo)
                                    let inside = r >= 0 && r < height && q >= 0 && q < width && lane < images.count
                                    let expected = inside ? source[((c * batch + first + lane) * height + r) * width + q] : 0
                                    if value != expected { misplaced += 1 }
                                    if inside { unpadded[((c * height + r) * width + q) * lanes + lane] = value }
                                }
                            }
                        }
                    }
                    SparseConvolution.fromBatchInner(unpadded, into: y, images: images, accumulate: accumulate)
                }
                let wrong = (0..<count).filter { back[$0] != (accumulate ? 1 + source[$0] : source[$0]) }.count
                #expect(misplaced == 0 && wrong == 0,
                        "\(height)×\(width) halo \(halo), accumulate \(accumulate): \(misplaced) misplaced in, \(wrong) wrong back")
            }
        }
    }

    /// The gather sums each output's taps in tap order, one fused multiply-add each from zero,
    /// however it blocks them: cut into chunks of 16 channels (40 channels make three), taps of
    /// a kernel row that read neighbouring positions taken together, runs of positions that
    /// cross a row. A scalar loop with the same order must give the same bits, forward (stride
    /// 1 and 2) and for the input gradient's transposed taps.
    @Test func gatherSumsEachOutputInTapOrder() {
        let lanes = SparseConvolution.blockLanes
        var random = RandomStream(seed: 7, stream: .synthetic)
        for (inChannels, outChannels, stride, height, width, density) in [(40, 24, 1, 9, 13, 0.75), (40, 24, 1, 9, 13, 0.3),
                                                                             (20, 40, 2, 10, 11, 0.75), (24, 40, 1, 5, 5, 0.5)] {
            let k = 3
            let mask = (0..<(outChannels * inChannels * k * k)).map { _ in Float(Double(random.nextUnitFloat()) < density ? 1 : 0) }
            let pattern = mask.withUnsafeBufferPointer {
                SparsePattern(mask: $0.baseAddress!, inChannels: inChannels, outChannels: outChannels, kernel: k, stride: stride,
                              padding: 1, height: height, width: width)
            }
            #expect(pattern.rows.chunks == (inChannels + 15) / 16 && pattern.columns.chunks == (outChannels + 15) / 16)
            let weights = (0..<mask.count).map { _ in random.nextSymmetric(1) }
            func check(_ taps: SparsePattern.Taps, first: Int, step: Int, groups: Int, positions: SparsePattern.Positions,
                       sourceCount: Int, outputArea: Int, what: String) {
                let source = (0..<(sourceCount * lanes)).map { _ in random.nextSymmetric(1) }
                let values = taps.weightIndices.map { weights[Int($0)] }
                var out = [Float](repeating: .nan, count: groups * outputArea * lanes)
                source.withUnsafeBufferPointer { source in
                    out.withUnsafeMutableBufferPointer { out in
                        SparseConvolution.gather(taps, first: first, step: step, groups: groups, at: positions, from: source.baseAddress!,
                                                 values: values, into: out.baseAddress!, groupStride: outputArea * lanes)
                    }
                }
                var wrong = 0
                for group in 0..<groups {
                    let g = first + group * step
                    for (p, base) in positions.sourceBase.enumerated() {
                        for lane in 0..<lanes {
                            var sum: Float = 0
                            for t in taps.start[g]..<taps.start[g + 1] {
                                sum = sum.addingProduct(values[t], source[(Int(base) + Int(taps.offsets[t])) * lanes + lane])
                            }
                            if out[(group * outputArea + Int(positions.outBase[p])) * lanes + lane].bitPattern != sum.bitPattern { wrong += 1 }
                        }
                    }
                }
                #expect(wrong == 0, "\(what), \(inChannels)>\(outChannels) stride \(stride) density \(density): \(wrong) values differ")
            }
            check(pattern.rows, first: 0, step: 1, groups: outChannels, positions: pattern.outputPositions,
                  sourceCount: pattern.paddedInputPositions, outputArea: pattern.outputHeight * pattern.outputWidth, what: "forward")
            let classes = stride * stride
            for r in 0..<classes {
                check(pattern.columns, first: r, step: classes, groups: inChannels, positions: pattern.classes[r],
                      sourceCount: pattern.paddedGradientPositions, outputArea: height * width, what: "input gradient class \(r)")
            }
        }
    }

    /// The width-8 PyTorch fixture's weights and images (batch 4: half of the 8 lanes are
    /// padding), with masks of 30%, 10% and 3% per layer in turn.
    @Test func width8MaskedStepEqualsDense() throws {
        let fixture = Fixtures.training
        let input = try fixture.tensor("input")
        let labels = try fixture.integers("target").map(Int32.init)
        let space = Workspace()
        let x = FeatureMap.channelMajor(fromNCHW: input.pointer, batch: 4, channels: 3, height: 32, width: 32, into: space)
        func run(sparse: Bool, threads: Int) throws -> (Step, ResNet18) {
            let network = ResNet18(.init(width: 8, inputChannels: 3, classes: 10))
            try network.loadState(from: fixture, prefix: "init.", source: "fixture")
            try Self.applyHashMasks(network) { layer, _ in [0.3, 0.1, 0.03][layer % 3] }
            try Self.setSparse(network, sparse)
            return Parallel.withThreads(threads) { (Self.step(network, x, labels: labels), network) }
        }
        let (dense, network) = try run(sparse: false, threads: 2)
        let (sparse, _) = try run(sparse: true, threads: 2)
        Self.expectSameStep(sparse, dense, network: network, tolerance: 1e-5)
        let (oneThread, _) = try run(sparse: true, threads: 1)
        #expect(oneThread.logits == sparse.logits && oneThread.gradients == sparse.gradients,
                "the sparse step differs between 1 and 2 threads")
    }

    /// A batch of three lane blocks (16, 16 and 8 images), which the threads share out block by
    /// block: the same step, bit for bit, on 1, 2 and 3 threads (2 threads take one and two
    /// blocks, 3 one each), and the dense engine's to float32 rounding.
    @Test func blocksSharedOutOverThreadsGiveTheSameStep() throws {
        let batch = 40
        var random = RandomStream(seed: 3, stream: .synthetic)
        let pixels = (0..<(batch * 3 * 32 * 32)).map { _ in random.nextSymmetric(1) }
        let labels = (0..<batch).map { Int32($0 % 10) }
        let space = Workspace()
        let x = pixels.withUnsafeBufferPointer {
            FeatureMap.channelMajor(fromNCHW: $0.baseAddress!, batch: batch, channels: 3, height: 32, width: 32, into: space)
        }
        func run(sparse: Bool, threads: Int) throws -> (Step, ResNet18) {
            let network = ResNet18(.init(width: 8, inputChannels: 3, classes: 10))
            network.initialise(seed: 1)
            try Self.applyHashMasks(network) { layer, _ in [0.7, 0.25, 0.05][layer % 3] }
            try Self.setSparse(network, sparse)
            return Parallel.withThreads(threads) { (Self.step(network, x, labels: labels), network) }
        }
        let (dense, network) = try run(sparse: false, threads: 2)
        let (oneThread, _) = try run(sparse: true, threads: 1)
        Self.expectSameStep(oneThread, dense, network: network, tolerance: 1e-5)
        for threads in [2, 3] {
            let (shared, _) = try run(sparse: true, threads: threads)
            #expect(shared.logits == oneThread.logits && shared.gradients == oneThread.gradients,
                    "the sparse step on \(threads) threads differs from 1 thread's")
        }
    }

    /// The paper's width-64 network (seed 0) with SynFlow's per-layer densities at 5% in all
    /// (its 1×1 shortcuts pruned away entirely), batch 8, against PyTorch float64
    /// (`scripts/sparse_step_reference.py`) and our dense engine: logits, loss and every
    /// sampled kept-weight gradient within 1e-5 relative of both (or of float64 as closely as
    /// PyTorch float32 comes, if that is looser).
    ///
    /// The engines sum each convolution's products in different orders, and in a network this
    /// deep a ReLU input within float32 rounding of zero lands on the other side now and then
    /// (the sparse engine on an AMD EPYC put one of layer4.0's, 4.5e-7 in float64, there; the
    /// dense engine on an Intel Xeon another): that position's gradient then passes in one
    /// engine and not in the other, and every gradient below it moves by ~1e-3. Such a gate
    /// is a coin toss of the rounding, not a property of the engine, so the fixture lists every
    /// ReLU input within 1e-4 of zero in float64 and both engines (and PyTorch float32 in the
    /// fixture) take those gates as float64 sets them. A gate so set must have been within
    /// 1e-5 of zero, and afterwards the two engines' gates agree everywhere.
    @Test(.timeLimit(.minutes(10))) func width64SynFlowStepMatchesPyTorchAndDense() throws {
        let fixture = try Safetensors(contentsOf: Bundle.module.url(forResource: "resnet18_w64_sparse_step", withExtension: "safetensors",
                                                                      subdirectory: "Fixtures")!)
        let batch = 8
        var random = RandomStream(seed: 0, stream: .synthetic)
        let pixels = (0..<(batch * 3 * 32 * 32)).map { _ in random.nextSymmetric(1) }
        try #require(abs(pixels.reduce(0.0) { $0 + Double($1) } - (try fixture.doubles("input.checksum")[0])) < 1e-6)
        let labels = (0..<batch).map { Int32($0 % 10) }
        let space = Workspace()
        let x = pixels.withUnsafeBufferPointer {
            FeatureMap.channelMajor(fromNCHW: $0.baseAddress!, batch: batch, channels: 3, height: 32, width: 32, into: space)
        }
        let nearZero = try zip(fixture.doubles("near_zero.relu"), zip(fixture.doubles("near_zero.index"), fixture.doubles("near_zero.value")))
            .map { (relu: Int($0), index: Int($1.0), value: $1.1) }
        try #require(!nearZero.isEmpty)
        /// The step; the ReLUs' gates in forward order (the stem's, then each block's first and
        /// last); and the float64 values of the gates this engine had set otherwise.
        func run(sparse: Bool) throws -> (Step, ResNet18, [[Bool]], [Double]) {
            let network = ResNet18(.init(width: 64, inputChannels: 3, classes: 10))
            network.initialise(seed: 0)
            try Self.applyHashMasks(network) { _, parameter in (try? fixture.doubles("density." + parameter.name)[0]) ?? 1 }
            try Self.setSparse(network, sparse)
            var gates: [[Bool]] = [], changed: [Double] = []
            let step = Self.step(network, x, labels: labels) { network in
                let relus = [network.bn1] + network.blocks.flatMap { [$0.bn1, $0.bn2] }
                for near in nearZero {
                    // The fixture counts in NCHW; the feature maps are channel-major.
                    let side = 32 >> (near.relu == 0 ? 0 : (near.relu - 1) / 4), plane = side * side, channels = relus[near.relu].channels
                    let (image, rest) = near.index.quotientAndRemainder(dividingBy: channels * plane)
                    let (channel, position) = rest.quotientAndRemainder(dividingBy: plane)
                    let open = near.value > 0
                    let seen = relus[near.relu].forceTrainingGate(at: (channel * batch + image) * plane + position, open: open)
                    if (seen > 0) != open { changed.append(near.value) }
                }
                gates = relus.map(\.trainingGate)
            }
            return (step, network, gates, changed)
        }
        let (sparse, network, sparseGates, sparseChanged) = try run(sparse: true)
        let (dense, _, denseGates, denseChanged) = try run(sparse: false)
        for value in sparseChanged + denseChanged {
            #expect(abs(value) < 1e-5, "an engine set a ReLU input of \(value) in float64 to the other side of zero")
        }
        #expect(sparseGates == denseGates, "the engines set ReLU gates differently beyond the fixture's near-zero inputs")

        let torchLogits = try fixture.doubles("torch_f32.logits")[0], torchWorst = try fixture.doubles("torch_f32.grad_worst")[0]
        let logitError = Self.relativeError64(sparse.logits.map(Double.init), try fixture.doubles("logits"))
        #expect(logitError <= Swift.max(2 * torchLogits, 1e-5), "logits against float64: \(logitError) (PyTorch float32 \(torchLogits))")
        #expect(relativeError(sparse.logits, dense.logits) < 1e-5)
        let loss = try fixture.doubles("loss")[0]
        #expect(abs(sparse.loss - loss) < 1e-5 * loss, "loss \(sparse.loss) vs float64 \(loss)")
        #expect(abs(sparse.loss - dense.loss) < 1e-5 * loss, "loss \(sparse.loss) vs dense \(dense.loss)")
        var worst = (reference: 0.0, dense: 0.0)
        for parameter in network.prunableParameters {
            let mask = parameter.mask!.array
            let kept = mask.indices.filter { mask[$0] != 0 }
            let gradient = sparse.gradients[parameter.name]!
            let sampled = stride(from: 0, to: kept.count, by: max(1, kept.count / 256)).map { Double(gradient[kept[$0]]) }
            let fromReference = Self.relativeError64(sampled, try fixture.doubles("grad_sample." + parameter.name))
            let fromDense = relativeError(kept.map { gradient[$0] }, kept.map { dense.gradients[parameter.name]![$0] })
            worst = (Swift.max(worst.reference, fromReference), Swift.max(worst.dense, fromDense))
            #expect(fromReference <= Swift.max(2 * torchWorst, 1e-5), "\(parameter.name): kept-weight gradient \(fromReference) from float64")
            #expect(fromDense <= 1e-5, "\(parameter.name): kept-weight gradient \(fromDense) from the dense engine's")
            #expect(mask.indices.allSatisfy { mask[$0] != 0 || gradient[$0] == 0 || !network.convolutions.contains { $0.weight === parameter } },
                    "\(parameter.name): a pruned weight has a gradient")
        }
        func described(_ values: [Double]) -> String {
            values.isEmpty ? "none" : "\(values.count) (float64 \(values.map { String(format: "%.1e", $0) }.joined(separator: ", ")))"
        }
        print("w64 SynFlow-like 5%, batch 8: logits \(logitError) from float64 (PyTorch float32 \(torchLogits)); worst sampled kept-weight gradient \(worst.reference) from float64 (PyTorch float32 \(torchWorst)), \(worst.dense) from dense; of \(nearZero.count) near-zero ReLU inputs set to float64's side: sparse \(described(sparseChanged)), dense \(described(denseChanged))")
    }

    @Test func choiceNeedsTheThreshold() {
        #expect(SparseSelection.prefersSparse(dense: 1.2, sparse: 1.0))
        #expect(!SparseSelection.prefersSparse(dense: 1.19, sparse: 1.0))
        #expect(!SparseSelection.prefersSparse(dense: 1.0, sparse: 2.0), "a layer where sparse is slower stays dense")
    }

    /// A sweep taken in a slow phase of the machine (both paths slower, sparse more: stage 1 of
    /// a width-16 start measured so) does not decide alone: each path keeps its faster sweep.
    @Test func verdictKeepsEachPathsFasterSweep() {
        let start = Date()
        let slow = SparseSelection.Verdict(denseSeconds: 15.0e-3, sparseSeconds: 14.7e-3, agreed: true, measuredAt: start, othersBusyShare: 0)
        let usual = SparseSelection.Verdict(denseSeconds: 8.7e-3, sparseSeconds: 7.1e-3, agreed: false,
                                            measuredAt: start.addingTimeInterval(3), othersBusyShare: 0.1)
        #expect(!slow.sparse && usual.sparse)
        for combined in [slow.fastest(with: usual), usual.fastest(with: slow)] {
            #expect(combined.denseSeconds == 8.7e-3 && combined.sparseSeconds == 7.1e-3 && combined.sparse)
            #expect(!combined.agreed && combined.othersBusyShare == 0.1)
        }
    }

    /// A fresh verdict file in a folder of its own (removed by `removeCache`).
    static func freshCache() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sparse-verdicts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder.appendingPathComponent("verdicts.json")
    }

    static func removeCache(_ cache: URL) { try? FileManager.default.removeItem(at: cache.deletingLastPathComponent()) }

    /// A width-4 network with the first convolution dense and every other kept at 5%.
    static func maskedWidth4() throws -> ResNet18 {
        let network = ResNet18(.init(width: 4, inputChannels: 1, classes: 10))
        network.initialise(seed: 0)
        try applyHashMasks(network) { layer, _ in layer == 0 ? 1 : 0.05 }
        return network
    }

    @Test func choiceFollowsModeAndResumedRuns() throws {
        let cache = try Self.freshCache()
        defer { Self.removeCache(cache) }
        let unmasked = ResNet18(.init(width: 4, inputChannels: 1, classes: 10))
        unmasked.initialise(seed: 0)
        #expect(try SparseSelection.install(on: unmasked, batchSize: 8, height: 8, width: 8, mode: .on, cache: cache) == nil,
                "an unmasked network has nothing to choose")
        let network = try Self.maskedWidth4()
        let on = try #require(try SparseSelection.install(on: network, batchSize: 8, height: 8, width: 8, mode: .on, cache: cache))
        #expect(on.sparseLayers.count == network.convolutions.count)
        #expect(network.convolutions.allSatisfy { $0.sparse != nil })
        let off = try #require(try SparseSelection.install(on: network, batchSize: 8, height: 8, width: 8, mode: .off, cache: cache))
        #expect(off.sparseLayers.isEmpty && network.convolutions.allSatisfy { $0.sparse == nil })
        let resumed = try #require(try SparseSelection.install(on: network, batchSize: 8, height: 8, width: 8, mode: .auto,
                                                               fixed: ["layer1.0.conv2"], cache: cache))
        #expect(resumed.sparseLayers == ["layer1.0.conv2"])
        #expect(network.convolutions.filter { $0.sparse != nil }.map(\.weight.name) == ["layer1.0.conv2.weight"])
        #expect(!FileManager.default.fileExists(atPath: cache.path), "a resumed run measures nothing")
        let measured = try #require(try SparseSelection.install(on: network, batchSize: 8, height: 8, width: 8, mode: .auto, cache: cache))
        #expect(measured.layers[0].density == 1 && !measured.layers[0].sparse && measured.layers[0].denseSeconds == nil,
                "a layer that keeps every weight stays dense unmeasured")
        #expect(measured.layers.dropFirst().allSatisfy { $0.denseSeconds != nil && $0.sparseSeconds != nil })
        let installed = network.convolutions.filter { $0.sparse != nil }.map { String($0.weight.name.dropLast(".weight".count)) }
        #expect(measured.sparseLayers == installed)
        #expect(throws: ModelError.self) { try SparseSelection.Mode.fromEnvironment(["PRUNESWEEP_SPARSE": "fast"]) }
        #expect(try SparseSelection.Mode.fromEnvironment([:]) == .auto)
        #expect(try SparseSelection.Mode.fromEnvironment(["PRUNESWEEP_SPARSE": "OFF"]) == .off)
    }

    /// The work bound weighs each layer by its multiply-adds: a width-4 network on 8×8 images
    /// does 137,472 per image (2,304 in conv1, 36,864 in stage 1, 32,768 in each later stage,
    /// whose halved extent makes up for doubled channels), so halving stage 1's weights keeps
    /// 119,040 of them, where it keeps 99.3% of the weights (43,332 of 43,620).
    @Test func keptWorkWeighsLayersByTheirMultiplyAdds() throws {
        let network = ResNet18(.init(width: 4, inputChannels: 1, classes: 10))
        network.initialise(seed: 0)
        #expect(SparseBenchmark.keptWork(of: network, height: 8, width: 8) == 1)
        for conv in network.convolutions where conv.weight.layerName.hasPrefix("layer1.") {
            let values = (0..<conv.weight.value.count).map { Float($0 % 2 == 0 ? 1 : 0) }
            try conv.weight.setMask(Tensor(shape: conv.weight.shape, values: values))
        }
        #expect(abs(SparseBenchmark.keptWork(of: network, height: 8, width: 8) - 119_040.0 / 137_472.0) < 1e-12)
    }

    @Test func denseAtFullDensity() throws {
        let cache = try Self.freshCache()
        defer { Self.removeCache(cache) }
        let network = ResNet18(.init(width: 4, inputChannels: 1, classes: 10))
        network.initialise(seed: 0)
        try MaskSet(onesFor: network).apply(to: network)
        let choice = try #require(try SparseSelection.install(on: network, batchSize: 8, height: 8, width: 8, mode: .auto, cache: cache))
        #expect(choice.sparseLayers.isEmpty && network.convolutions.allSatisfy { $0.sparse == nil })
        #expect(choice.layers.allSatisfy { $0.denseSeconds == nil }, "nothing to measure at density 1")
    }

    /// The cached verdict decides, through the whole choice: rewritten so that sparse is slower
    /// on every layer, every layer falls back to dense; so that it is faster, every masked
    /// layer goes sparse. Nothing is measured again while the file holds the layers.
    @Test func cachedVerdictDecidesAndSlowerSparseStaysDense() throws {
        let cache = try Self.freshCache()
        defer { Self.removeCache(cache) }
        let network = try Self.maskedWidth4()
        let first = try #require(try SparseSelection.install(on: network, batchSize: 8, height: 8, width: 8, mode: .auto, cache: cache))
        let decoder = JSONDecoder(), encoder = JSONEncoder()
        decoder.dateDecodingStrategy = .iso8601
        encoder.dateEncodingStrategy = .iso8601
        let measured = try decoder.decode(SparseSelection.VerdictFile.self, from: Data(contentsOf: cache))
        let masked = network.convolutionInputs(height: 8, width: 8).dropFirst()
        #expect(Set(masked.map {
            SparseSelection.layerKey($0.conv, height: $0.height, width: $0.width, batch: 8,
                                     density: Double($0.conv.weight.keptCount) / Double($0.conv.weight.value.count))
        })
                == Set(measured.layers.keys), "one verdict per shape, extent, batch and density bucket")
        let again = try #require(try SparseSelection.install(on: network, batchSize: 8, height: 8, width: 8, mode: .auto, cache: cache))
        #expect(again == first, "a second start reads the same verdicts, seconds included")

        func rewrite(sparseOverDense factor: Double) throws -> SparseChoice? {
            var file = measured
            for (key, verdict) in measured.layers { file.layers[key]?.sparseSeconds = factor * verdict.denseSeconds }
            try encoder.encode(file).write(to: cache)
            return try SparseSelection.install(on: network, batchSize: 8, height: 8, width: 8, mode: .auto, cache: cache)
        }
        let slower = try #require(try rewrite(sparseOverDense: 2))
        #expect(slower.sparseLayers.isEmpty && network.convolutions.allSatisfy { $0.sparse == nil })
        let barely = try #require(try rewrite(sparseOverDense: 1 / 1.1))
        #expect(barely.sparseLayers.isEmpty, "1.1× faster is under the 1.2× threshold")
        let faster = try #require(try rewrite(sparseOverDense: 0.5))
        #expect(faster.sparseLayers == faster.layers.dropFirst().map(\.layer))
        #expect(network.convolutions.dropFirst().allSatisfy { $0.sparse != nil } && network.conv1.sparse == nil)
    }

    /// Two trainings starting together on one machine get the same choice: one measures under
    /// the cache's lock, the other waits and reads its verdicts (same seconds, not a second
    /// measurement that could fall the other way).
    @Test func simultaneousStartsShareOneMeasurement() throws {
        let cache = try Self.freshCache()
        defer { Self.removeCache(cache) }
        // Each thread touches only its own network.
        nonisolated(unsafe) let networks = try [Self.maskedWidth4(), Self.maskedWidth4()]
        let choices = Mutex<[SparseChoice?]>([nil, nil])
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            let choice = try? SparseSelection.install(on: networks[index], batchSize: 8, height: 8, width: 8, mode: .auto, cache: cache)
            choices.withLock { $0[index] = choice }
        }
        let (a, b) = choices.withLock { ($0[0], $0[1]) }
        #expect(a != nil && a == b)
    }
}
