/// The rectifier used after the residual addition: `out = max(a + b, 0)` in one pass, and its
/// gradient `∂L/∂(a+b) = ∂L/∂out · [out > 0]`, added straight into the block's input gradient.
/// (The other ReLUs are fused into BatchNorm2d.)
enum ReLU {
    /// `out[i] = max(a[i] + b[i], 0)` over `count` elements.
    static func addForward(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forEachRange(count, minimumPerThread: 65_536) { range in
            for i in range { out[i] = Swift.max(a[i] + b[i], 0) }
        }
    }

    /// `dx[i] += out[i] > 0 ? dy[i] : 0` over `count` elements.
    static func accumulateBackward(_ dy: UnsafePointer<Float>, output: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forEachRange(count, minimumPerThread: 65_536) { range in
            for i in range { dx[i] += output[i] > 0 ? dy[i] : 0 }
        }
    }
}
