import Foundation
import Protocol

/// Carries a worker's log lines to its coordinator once the coordinator has said it takes them
/// (`TaskAssignment.takesLogs`): an older coordinator would reject the `log` type as unknown.
/// The worker connects it to its connection and disconnects it whenever the link is replaced.
public final class LogRelay: Sendable {
    private let target = Locked<(@Sendable (WorkerLogLine) -> Void)?>(nil)

    /// A relay that sends nothing until connected.
    public init() {}

    /// From now on lines go to `send` (nil: they stay local).
    func connect(_ send: (@Sendable (WorkerLogLine) -> Void)?) { target.with { $0 = send } }

    /// Sends `line` if a coordinator takes it.
    func forward(_ line: WorkerLogLine) {
        // Sent outside the lock: the connection's queue takes its own.
        target.with { $0 }?(line)
    }
}
