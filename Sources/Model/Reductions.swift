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

/// Σ (x[i] − shift)², with the same lane scheme as `sum`.
@inline(__always)
func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, count: Int, from shift: Double) -> Double {
    var lanes = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    var i = 0
    @inline(__always) func sq(_ v: Float) -> Double { let d = Double(v) - shift; return d * d }
    while i &+ 8 <= count {
        lanes.0 += sq(x[i]); lanes.1 += sq(x[i &+ 1])
        lanes.2 += sq(x[i &+ 2]); lanes.3 += sq(x[i &+ 3])
        lanes.4 += sq(x[i &+ 4]); lanes.5 += sq(x[i &+ 5])
        lanes.6 += sq(x[i &+ 6]); lanes.7 += sq(x[i &+ 7])
        i &+= 8
    }
    var total = ((lanes.0 + lanes.1) + (lanes.2 + lanes.3)) + ((lanes.4 + lanes.5) + (lanes.6 + lanes.7))
    while i < count {
        total += sq(x[i])
        i &+= 1
    }
    return total
}

/// Σ a[i]·b[i], with the same lane scheme as `sum`.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Double {
    var lanes = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    var i = 0
    while i &+ 8 <= count {
        lanes.0 += Double(a[i] * b[i]); lanes.1 += Double(a[i &+ 1] * b[i &+ 1])
        lanes.2 += Double(a[i &+ 2] * b[i &+ 2]); lanes.3 += Double(a[i &+ 3] * b[i &+ 3])
        lanes.4 += Double(a[i &+ 4] * b[i &+ 4]); lanes.5 += Double(a[i &+ 5] * b[i &+ 5])
        lanes.6 += Double(a[i &+ 6] * b[i &+ 6]); lanes.7 += Double(a[i &+ 7] * b[i &+ 7])
        i &+= 8
    }
    var total = ((lanes.0 + lanes.1) + (lanes.2 + lanes.3)) + ((lanes.4 + lanes.5) + (lanes.6 + lanes.7))
    while i < count {
        total += Double(a[i] * b[i])
        i &+= 1
    }
    return total
}
