/// What goes wrong in a simulated fleet: fractions of the workers that are killed (their
/// socket closes for good), fall silent (no message, not even a heartbeat, socket kept),
/// run slowly (every step `slowFactor` times longer) or rejoin (a new connection and a new
/// `hello` that names the task still running, as a restarted link does). Killed, silent and
/// rejoining workers act once, at a time drawn uniformly within `window` seconds of the start.
public struct FleetFaults: Codable, Sendable, Equatable {
    /// Fractions of the workers, each in 0...1; a worker has at most one fault.
    public var killed = 0.0, silent = 0.0, slow = 0.0, rejoining = 0.0
    /// How much longer a slow worker's steps take.
    public var slowFactor = 4.0
    /// Seconds from the start within which killed, silent and rejoining workers act.
    public var window = 60.0

    /// No faults.
    public init() {}

    /// One worker's fault.
    public enum Fault: Sendable, Equatable {
        case none
        /// Every step `factor` times longer.
        case slow(factor: Double)
        /// At `at` seconds after the start.
        case killed(at: Double), silent(at: Double), rejoining(at: Double)
    }

    /// The fault of a worker, from two uniform draws in 0..<1 (which fault, and when).
    public func fault(kind draw: Double, time: Double) -> Fault {
        let at = time * window
        var edge = killed
        if draw < edge { return .killed(at: at) }
        edge += silent
        if draw < edge { return .silent(at: at) }
        edge += rejoining
        if draw < edge { return .rejoining(at: at) }
        edge += slow
        return draw < edge ? .slow(factor: slowFactor) : .none
    }
}
