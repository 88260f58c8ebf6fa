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
