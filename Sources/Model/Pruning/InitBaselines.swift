/// The SynFlow paper's single-shot baselines at initialisation, scored once and masked with the
/// same global rule: a method is only worth its cost if it beats random at the same density.
public enum InitBaselines {
    /// Uniform random scores from the run seed's pruning stream.
    public static func randomScores(_ network: ResNet18, seed: UInt64) -> [String: [Double]] {
        var random = RandomStream(seed: seed, stream: .pruning)
        var scores: [String: [Double]] = [:]
        for parameter in network.prunableParameters {
            scores[parameter.name] = (0..<parameter.value.count).map { _ in Double(random.nextUnitFloat()) + 1e-9 }
        }
        return scores
    }

    /// |w| (masked weights score 0).
    public static func magnitudeScores(_ network: ResNet18) -> [String: [Double]] {
        var scores: [String: [Double]] = [:]
        for parameter in network.prunableParameters { scores[parameter.name] = parameter.value.array.map { abs(Double($0)) } }
        return scores
    }

    /// SNIP (Lee et al. 2019): |∂L/∂w ⊙ w| of the cross-entropy on one batch holding the first
    /// `perClass` images of each class in the seed's shuffled order (train-mode BatchNorm).
    public static func snipScores(_ network: ResNet18, data: ImageDataset, perClass: Int, seed: UInt64) -> [String: [Double]] {
        var random = RandomStream(seed: seed, stream: .pruning)
        var counts = [Int](repeating: 0, count: data.classes)
        var chosen: [Int] = []
        for index in random.permutation(data.count) where counts[Int(data.labels[index])] < perClass {
            counts[Int(data.labels[index])] += 1
            chosen.append(index)
        }
        let assembler = BatchAssembler(), loss = CrossEntropy()
        var noAugmentation: RandomStream? = nil
        // BatchNorm running statistics must not move: scoring is not training.
        let saved = network.buffers.map { $0.tensor.clone() }
        let x = assembler.assemble(data, plan: BatchPlan(data, indices: chosen[...], random: &noAugmentation))
        let logits = network.forward(x, training: true)
        _ = assembler.labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) }
        network.backward(loss.backward(like: logits))
        for (buffer, copy) in zip(network.buffers, saved) { buffer.tensor.copy(from: copy) }
        var scores: [String: [Double]] = [:]
        for parameter in network.prunableParameters {
            scores[parameter.name] = zip(parameter.gradient.array, parameter.value.array).map { abs(Double($0 * $1)) }
        }
        return scores
    }
}
