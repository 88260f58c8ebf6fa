/// A sweep or preset that cannot run, with the field to fix.
public enum SweepError: Error, Equatable, CustomStringConvertible {
    /// The message names the file or field.
    case invalid(String)
    /// The coordinator cancelled the task with this id while it ran.
    case cancelled(String)

    public var description: String {
        switch self {
        case .invalid(let message): message
        case .cancelled(let task): "task \(task.prefix(12)) was cancelled by the coordinator"
        }
    }
}
