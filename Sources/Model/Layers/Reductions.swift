/// Sums of float rows accumulated in Double over eight independent lanes: Double keeps a
/// 131,072-element BatchNorm row exact enough for PyTorch parity, and the lanes break the
/// add-latency chain. The lane order is fixed, so the result is deterministic.
@inline(__always)
func sum(_ x: UnsafePointer<Float>, count: Int) -> Double {
    var lanes = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    var i = 0
    while i &+ 8 <= count {
        lanes.0 += Double(x[i]); lanes.1 += Double(x[i &+ 1])
        lanes.2 += Double(x[i &+ 2]); lanes.3 += Double(x[i &+ 3])
        lanes.4 += Double(x[i &+ 4]); lanes.5 += Double(x[i &+ 5])
        lanes.6 += Double(x[i &+ 6]); lanes.7 += Double(x[i &+ 7])
        i &+= 8
    }
    var total = ((lanes.0 + lanes.1) + (lanes.2 + lanes.3)) + ((lanes.4 + lanes.5) + (lanes.6 + lanes.7))
    while i < count {
        total += Double(x[i])
        i &+= 1
    }
    return total
}

/// Blocks of this many elements are summed in float SIMD lanes, then added into Double
/// totals: the lanes vectorise, and the Double totals keep a 131,072-element row accurate.
private let block = 256

/// Σ x[i] and Σ x[i]².
@inline(__always)
func sumAndSumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> (sum: Double, sumOfSquares: Double) {
    var total = 0.0, squares = 0.0
    var i = 0
    while i &+ block <= count {
        var s = SIMD16<Float>(), q = SIMD16<Float>()
        var j = i
        while j < i &+ block {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self)
            s += v
            q += v * v
            j &+= 16
        }
        total += Double(s.sum())
        squares += Double(q.sum())
        i &+= block
    }
    while i < count {
        total += Double(x[i])
        squares += Double(x[i]) * Double(x[i])
        i &+= 1
    }
    return (total, squares)
}

/// Σ g[i] and Σ g[i]·(x[i] − mean), where g counts as zero wherever `gate` (when given) is
/// not positive: the two sums of BatchNorm's backward pass, with a ReLU mask applied on the fly.
@inline(__always)
func gradientSums(_ g: UnsafePointer<Float>, gatedBy gate: UnsafePointer<Float>?, input x: UnsafePointer<Float>,
                  mean: Float, count: Int) -> (sum: Double, dotCentered: Double) {
    var total = 0.0, dots = 0.0
    var i = 0
    let center = SIMD16<Float>(repeating: mean)
    while i &+ block <= count {
        var s = SIMD16<Float>(), d = SIMD16<Float>()
        var j = i
        while j < i &+ block {
            var v = UnsafeRawPointer(g + j).loadUnaligned(as: SIMD16<Float>.self)
            if let gate {
                let open = UnsafeRawPointer(gate + j).loadUnaligned(as: SIMD16<Float>.self) .> 0
                v = SIMD16<Float>(repeating: 0).replacing(with: v, where: open)
            }
            s += v
            d += v * (UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self) - center)
            j &+= 16
        }
        total += Double(s.sum())
        dots += Double(d.sum())
        i &+= block
    }
    while i < count {
        let v: Float = gate.map { $0[i] > 0 ? g[i] : 0 } ?? g[i]
        total += Double(v)
        dots += Double(v * (x[i] - mean))
        i &+= 1
    }
    return (total, dots)
}

/// out[i] = a·g[i] + b·x[i] + c, with g counting as zero wherever `gate` (when given) is not
/// positive: BatchNorm's input gradient once its two sums are known.
@inline(__always)
func affineGradient(_ g: UnsafePointer<Float>, gatedBy gate: UnsafePointer<Float>?, input x: UnsafePointer<Float>,
                    into out: UnsafeMutablePointer<Float>, count: Int, a: Float, b: Float, c: Float) {
    var i = 0
    let va = SIMD16<Float>(repeating: a), vb = SIMD16<Float>(repeating: b), vc = SIMD16<Float>(repeating: c)
    while i &+ 16 <= count {
        var v = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
        if let gate {
            let open = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD16<Float>.self) .> 0
            v = SIMD16<Float>(repeating: 0).replacing(with: v, where: open)
        }
        let result = va * v + vb * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) + vc
        UnsafeMutableRawPointer(out + i).storeBytes(of: result, as: SIMD16<Float>.self)
        i &+= 16
    }
    while i < count {
        let v: Float = gate.map { $0[i] > 0 ? g[i] : 0 } ?? g[i]
        out[i] = a * v + b * x[i] + c
        i &+= 1
    }
}
