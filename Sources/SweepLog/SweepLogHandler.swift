import Foundation
import Logging

/// The swift-log handler of both programs: it stamps each line with the time and level and
/// names its source (the logger's label, or the `worker` metadata of a line a worker sent),
/// and hands it to a `LogSink`. Every other metadata key travels in the JSON line.
public struct SweepLogHandler: LogHandler {
    /// The metadata key naming the worker a line came from (its source).
    public static let workerKey = "worker"
    /// The metadata key naming the task a line is about.
    public static let taskKey = "task"

    private let label: String
    private let sink: LogSink
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level

    /// A handler for loggers labelled `label` (the source of their lines) writing to `sink`.
    public init(label: String, sink: LogSink) {
        self.label = label
        self.sink = sink
        logLevel = sink.lowestLevel
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let more = event.metadata { all.merge(more) { $1 } }
        let source = all.removeValue(forKey: Self.workerKey).map { "\($0)" } ?? label
        let task = all.removeValue(forKey: Self.taskKey).map { "\($0)" }
        sink.write(LogEntry(time: Date().timeIntervalSince1970, level: event.level, source: source, task: task,
                            message: "\(event.message)", metadata: all.isEmpty ? nil : all.mapValues { "\($0)" }))
    }
}

extension Logger {
    /// A logger labelled `label` (`coordinator`, or a worker's name) writing to `sink`.
    public init(label: String, sink: LogSink) {
        self.init(label: label) { label in SweepLogHandler(label: label, sink: sink) }
    }
}
