import Foundation
import Logging

/// Where a program's log lines go: human lines to the terminal from `terminalLevel` up, and,
/// once `openFile` has named one, every line from `fileLevel` up as JSON to a file, so the
/// debug detail stays out of the terminal and in the run directory. Lines from any thread
/// are written whole, in order.
public final class LogSink: @unchecked Sendable {
    private let lock = NSLock()
    private let terminal: FileHandle
    private var file: FileHandle?
    /// The least severe level the terminal shows.
    public let terminalLevel: Logger.Level
    /// The least severe level the JSON file keeps.
    public let fileLevel: Logger.Level

    /// A sink showing `terminalLevel` and up on `terminal` (standard output by default) and
    /// keeping `fileLevel` and up in the file, once one is open.
    public init(terminalLevel: Logger.Level = .info, fileLevel: Logger.Level = .debug, terminal: FileHandle = .standardOutput) {
        self.terminalLevel = terminalLevel
        self.fileLevel = fileLevel
        self.terminal = terminal
    }

    /// Appends JSON lines to `url` from now on (its directory is created).
    public func openFile(_ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        lock.withLock { file = handle }
    }

    /// The least severe level any destination takes (the handlers drop what is below).
    public var lowestLevel: Logger.Level { min(terminalLevel, fileLevel) }

    /// Writes `entry` where its level is shown.
    public func write(_ entry: LogEntry) {
        lock.withLock {
            if entry.level >= terminalLevel { terminal.write(Data((entry.humanLine + "\n").utf8)) }
            if entry.level >= fileLevel, let file { file.write(Data((entry.jsonLine + "\n").utf8)) }
        }
    }

    /// Closes the file (the terminal stays).
    public func closeFile() {
        lock.withLock {
            try? file?.close()
            file = nil
        }
    }
}
