import Foundation
import Protocol

/// The connected workers' sessions by routing id, with the session of each worker name (a
/// name has at most one: a new session of a name replaces the old one), so that nothing per
/// message looks through them all. What each worker runs is the `Scheduler`'s.
struct WorkerSessions {
    private var byPeer: [Data: WorkerSession] = [:]
    private var peerOfName: [String: Data] = [:]

    /// The session of `peer`.
    subscript(_ peer: Data) -> WorkerSession? { byPeer[peer] }

    /// Every session.
    var all: Dictionary<Data, WorkerSession>.Values { byPeer.values }
    /// Every session's routing id.
    var peers: Dictionary<Data, WorkerSession>.Keys { byPeer.keys }
    /// Sessions connected now.
    var count: Int { byPeer.count }

    /// The session of the worker called `name`, if one is connected.
    func peer(named name: String) -> Data? { peerOfName[name] }

    /// Adds `session` (any session of the same name was removed first).
    mutating func add(_ session: WorkerSession) {
        byPeer[session.peer] = session
        peerOfName[session.name] = session.peer
    }

    /// Removes the session of `peer` and returns it.
    @discardableResult
    mutating func remove(_ peer: Data) -> WorkerSession? {
        guard let session = byPeer.removeValue(forKey: peer) else { return nil }
        if peerOfName[session.name] == peer { peerOfName[session.name] = nil }
        return session
    }

    /// Sets the live view's status line of the session of `peer`.
    mutating func setStatus(_ peer: Data, _ status: String) { byPeer[peer]?.status = status }

    /// Records that something was heard from `peer`, or sent to it, at `time`.
    mutating func heard(_ peer: Data, at time: Double) { byPeer[peer]?.liveness.heard(at: time) }
    mutating func sent(_ peer: Data, at time: Double) { byPeer[peer]?.liveness.sent(at: time) }
}
