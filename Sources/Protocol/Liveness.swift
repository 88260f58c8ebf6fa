/// The Paranoid Pirate's liveness rule as a small state machine: a peer is alive while it was
/// heard from within `interval × allowedMisses`; we owe it a heartbeat every `interval` of
/// silence on our side. Any message counts as a sign of life, not only heartbeats.
public struct Liveness: Sendable, Equatable {
    /// Seconds between heartbeats (2.5 by default; down to ~0.2 in tests).
    public var interval: Double
    /// Heartbeats that may be missed before the peer counts as dead (3 by default).
    public var allowedMisses: Int
    /// When the peer was last heard from, and when we last sent anything.
    public private(set) var lastHeard: Double, lastSent: Double

    /// A peer heard from and spoken to at `now` (seconds on a monotonic clock).
    public init(interval: Double = 2.5, allowedMisses: Int = 3, now: Double) {
        self.interval = interval
        self.allowedMisses = allowedMisses
        lastHeard = now
        lastSent = now
    }

    /// Any message arrived from the peer.
    public mutating func heard(at now: Double) { lastHeard = now }
    /// Any message went to the peer.
    public mutating func sent(at now: Double) { lastSent = now }

    /// The peer has been silent for more than `allowedMisses` intervals.
    public func isDead(at now: Double) -> Bool { now - lastHeard > interval * Double(allowedMisses) }
    /// We have been silent for an interval and owe the peer a heartbeat.
    public func heartbeatDue(at now: Double) -> Bool { now - lastSent >= interval }
}

/// Reconnection back-off: 1 s doubling to 32 s (the ZeroMQ Guide's defaults), reset on success.
public struct Backoff: Sendable, Equatable {
    /// The first and the longest wait, in seconds.
    public var initial: Double, maximum: Double
    /// The wait before the next attempt.
    public private(set) var current: Double

    /// A back-off starting at `initial`.
    public init(initial: Double = 1, maximum: Double = 32) {
        self.initial = initial
        self.maximum = maximum
        current = initial
    }

    /// The wait before this attempt; the next one waits twice as long, up to `maximum`.
    public mutating func next() -> Double {
        defer { current = Swift.min(current * 2, maximum) }
        return current
    }

    /// A connection worked: start again from `initial`.
    public mutating func reset() { current = initial }
}
