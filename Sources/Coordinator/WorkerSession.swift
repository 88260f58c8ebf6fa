import Foundation
import Protocol

/// What the coordinator knows of one connected worker's connection: who it is, whether it is
/// alive, and its latest status for the live view. Its slots, credit, tasks and failures are
/// the `Scheduler`'s, under its name.
struct WorkerSession {
    /// The ROUTER's routing id of the worker's connection.
    var peer: Data
    /// The worker's introduction.
    var hello: Hello
    /// Heartbeat bookkeeping.
    var liveness: Liveness
    /// The last progress it reported, for the live view ("epoch 2/4 acc 81.2%").
    var status = "idle"

    /// The worker's name.
    var name: String { hello.worker }
}
