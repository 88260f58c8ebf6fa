import Foundation
import Protocol

/// Carries a worker's log lines to its coordinator once the coordinator has said it takes them
/// (`TaskAssignment.takesLogs`): an older coordinator would reject the `log` type as unknown.
/// The worker connects it to its connection and disconnects it whenever the link is replaced.
public final class LogRelay: Sendable {
    /// The send function, boxed: a function stored as a `Locked` value itself would be
    /// re-wrapped in two reabstraction thunks on every access (the generic `inout`), so each
    /// line would cost more than the last.
    private struct Target: Sendable { let send: @Sendable (WorkerLogLine) -> Void }
    private let target = Locked<Target?>(nil)

    /// A relay that sends nothing until connected.
    public init() {}

    /// From now on lines go to `send` (nil: they stay local).
    func connect(_ send: (@Sendable (WorkerLogLine) -> Void)?) { target.with { $0 = send.map(Target.init) } }

    /// Sends `line` if a coordinator takes it.
    func forward(_ line: WorkerLogLine) {
        // Sent outside the lock: the connection's queue takes its own.
        target.with { $0 }?.send(line)
    }
}
