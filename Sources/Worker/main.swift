import Model
import Foundation
Parallel.threads = 2
BLAS.threads = 2
let network = ResNet18(.init(width: 64))
network.initialise(seed: 0)
let batch = 128
let input = Tensor(shape: [batch, 3, 32, 32], repeating: 0.3)
let labels = (0..<batch).map { Int32($0 % 10) }
let space = Workspace()
let x = FeatureMap.channelMajor(fromNCHW: input.pointer, batch: batch, channels: 3, height: 32, width: 32, into: space)
let loss = CrossEntropy()
let sgd = SGD()
for i in 0..<Int(ProcessInfo.processInfo.environment["STEPS"] ?? "6")! {
  let t = Date()
  let logits = network.forward(x, training: true)
  _ = labels.withUnsafeBufferPointer { loss.forward(logits, labels: $0) }
  let f = Date().timeIntervalSince(t)
  network.backward(loss.backward(like: logits))
  let b = Date().timeIntervalSince(t)
  sgd.step(network.parameters, learningRate: 0.01, firstStep: i == 0)
  print(i, f, b, Date().timeIntervalSince(t))
}
