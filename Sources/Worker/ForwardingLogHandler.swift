import Foundation
import Logging
import Protocol
import SweepLog

/// A worker's log handler: every line goes to the worker's own terminal (`SweepLogHandler`),
/// and from debug up also to the coordinator through the `LogRelay`, so the lines of a worker
/// on any host reach the coordinator's log under the worker's name.
struct ForwardingLogHandler: LogHandler {
    /// The metadata key with the id of the task a line is about (the coordinator names the
    /// task from it).
    static let taskIDKey = "taskID"
    /// The least severe level that travels to the coordinator (trace stays local).
    static let forwardedLevel = Logger.Level.debug

    private var local: SweepLogHandler
    private let relay: LogRelay

    /// A handler writing to `local` and forwarding through `relay`.
    init(local: SweepLogHandler, relay: LogRelay) {
        self.local = local
        self.relay = relay
    }

    var metadata: Logger.Metadata {
        get { local.metadata }
        set { local.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { min(local.logLevel, Self.forwardedLevel) }
        set { local.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { local[metadataKey: key] }
        set { local[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level >= local.logLevel { local.log(event: event) }
        guard event.level >= Self.forwardedLevel else { return }
        let task = (event.metadata?[Self.taskIDKey] ?? local.metadata[Self.taskIDKey]).map { "\($0)" }
        relay.forward(WorkerLogLine(time: Date().timeIntervalSince1970, level: event.level.rawValue, taskID: task, message: "\(event.message)"))
    }
}
