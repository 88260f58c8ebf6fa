/// xoshiro256** (Blackman & Vigna): a small, fast generator whose whole state is four words,
/// so a checkpoint can store it and a resumed run continues the identical stream.
public struct RandomStream: RandomNumberGenerator, Equatable, Sendable {
    /// The generator's state; never all zero.
    public private(set) var state: [UInt64]

    /// A stream seeded from `seed` and a `stream` label, so one run seed yields independent
    /// streams for initialisation, shuffling and augmentation.
    public init(seed: UInt64, stream: Stream) {
        var mixer = seed ^ (stream.rawValue &* 0x9E37_79B9_7F4A_7C15)
        state = (0..<4).map { _ in RandomStream.splitMix(&mixer) }
    }

    /// Restores a stream from a saved state.
    public init(state: [UInt64]) throws(ModelError) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else {
            throw .invalidCheckpoint("random state must be four words, not all zero; got \(state)")
        }
        self.state = state
    }

    /// The purposes that get their own stream.
    public enum Stream: UInt64, Sendable {
        case initialisation = 1, shuffle = 2, augmentation = 3, split = 4, synthetic = 5, pruning = 6
    }

    private static func splitMix(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next() -> UInt64 {
        let result = rotate(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotate(state[3], 45)
        return result
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform float in [0, 1) from the top 24 bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// A uniform float in [-bound, bound).
    public mutating func nextSymmetric(_ bound: Float) -> Float { (nextUnitFloat() * 2 - 1) * bound }

    /// A uniform integer in 0..<bound without modulo bias.
    public mutating func nextIndex(_ bound: Int) -> Int { Int.random(in: 0..<bound, using: &self) }

    /// A uniformly random permutation of 0..<count (Fisher–Yates).
    public mutating func permutation(_ count: Int) -> [Int] {
        var order = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                order.swapAt(i, nextIndex(i + 1))
            }
        }
        return order
    }
}
