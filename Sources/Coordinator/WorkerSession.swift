import Foundation
import Protocol

/// What the coordinator knows of one connected worker: who it is, whether it is alive, how
/// many more tasks it takes, what it runs, and whether it has failed too often to get more.
struct WorkerSession {
    /// The ROUTER's routing id of the worker's connection.
    var peer: Data
    /// The worker's introduction.
    var hello: Hello
    /// Heartbeat bookkeeping.
    var liveness: Liveness
    /// Tasks it may hold at once: its hello's `slots`, cut to its `WorkerSlotLimit` bound.
    var slots = 1
    /// Tasks it asked for and has not been given yet (never more than its slots).
    var credit = 0
    /// Its tasks, with their attempt numbers.
    var running: [String: Int] = [:]
    /// Tasks it failed in a row; quarantined at the cluster's limit.
    var consecutiveFailures = 0
    /// No more tasks go to it.
    var quarantined = false
    /// The last progress it reported, for the live view ("epoch 2/4 acc 81.2%").
    var status = "idle"

    /// The worker's name.
    var name: String { hello.worker }

    /// Tasks it may be given now: its credit, less what its slots cannot run beside the tasks
    /// it already holds (a peer asking for more than it can run gets no more).
    var capacity: Int { max(0, min(credit, slots - running.count)) }

    /// Adds credit from a `ready`, capped at the worker's slots.
    mutating func grant(_ asked: Int) {
        credit = min(slots, credit + max(0, min(asked, slots)))
    }
}
