/// The gradient of the rectifier after the residual addition, `∂L/∂(a+b) = ∂L/∂out · [out > 0]`,
/// added straight into the block's input gradient where the shortcut is the identity. (The
/// forward sum and ReLU are fused into the block's second BatchNorm, the other ReLUs into the
/// first.)
enum ReLU {
    /// `dx[i] += out[i] > 0 ? dy[i] : 0` over `count` elements, sixteen at a time.
    static func accumulateBackward(_ dy: UnsafePointer<Float>, output: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, count: Int) {
        StepProfile.measure(.residualBackward) {
            Parallel.forEachRange(count, minimumPerThread: 65_536) { range in
                var i = range.lowerBound
                let zero = SIMD16<Float>()
                while i &+ 16 <= range.upperBound {
                    let open = UnsafeRawPointer(output + i).loadUnaligned(as: SIMD16<Float>.self) .> 0
                    let gradient = UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD16<Float>.self)
                    let sum = UnsafeRawPointer(dx + i).loadUnaligned(as: SIMD16<Float>.self) + zero.replacing(with: gradient, where: open)
                    UnsafeMutableRawPointer(dx + i).storeBytes(of: sum, as: SIMD16<Float>.self)
                    i &+= 16
                }
                while i < range.upperBound {
                    dx[i] += output[i] > 0 ? dy[i] : 0
                    i &+= 1
                }
            }
        }
    }
}
