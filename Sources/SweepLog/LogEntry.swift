import Foundation
import Logging

/// One log line: when, how severe, who said it (the coordinator, or a worker and the task it
/// ran) and what. The terminal shows it as a human line; the run directory keeps it as JSON.
public struct LogEntry: Codable, Equatable, Sendable {
    /// Seconds since 1970.
    public var time: Double
    /// `trace` … `critical`, as swift-log names them.
    public var level: Logger.Level
    /// `coordinator`, or the worker's name.
    public var source: String
    /// The task the line is about, when it is about one.
    public var task: String?
    /// The line itself.
    public var message: String
    /// Any further metadata, flattened to text.
    public var metadata: [String: String]?

    /// An entry.
    public init(time: Double, level: Logger.Level, source: String, task: String? = nil, message: String, metadata: [String: String]? = nil) {
        self.time = time
        self.level = level
        self.source = source
        self.task = task
        self.message = message
        self.metadata = metadata
    }

    /// `2026-05-01 14:03:07.215 info     coordinator: message`, in local time; a worker's line
    /// names its task: `… debug    localhost-w1 [train dense seed 42]: message`.
    public var humanLine: String {
        let task = task.map { " [\($0)]" } ?? ""
        let padded = level.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
        return "\(Self.localTime(time)) \(padded) \(source)\(task): \(message)"
    }

    /// The entry as one line of JSON (sorted keys, the time in ISO 8601 UTC with milliseconds
    /// beside the number, so both people and programs read it).
    public var jsonLine: String {
        var object: [String: String] = metadata ?? [:]
        object["time"] = Self.utcTime(time)
        object["level"] = level.rawValue
        object["source"] = source
        object["message"] = message
        if let task { object["task"] = task }
        // Written by hand when every key is lowercase letters (the keys this project logs),
        // where every ordering of keys agrees: `JSONEncoder` per line was a twentieth of the
        // coordinator's socket thread at 1,000 workers. Other keys take the encoder.
        guard object.keys.allSatisfy({ $0.utf8.allSatisfy { (0x61...0x7a).contains($0) } }) else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: (try? encoder.encode(object)) ?? Data("{}".utf8), as: UTF8.self)
        }
        var line = "{"
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            if line.utf8.count > 1 { line += "," }
            line += "\"\(key)\":"
            Self.appendJSONString(value, to: &line)
        }
        return line + "}"
    }

    /// `text` as a JSON string, escaped as `JSONEncoder` escapes it (slashes kept).
    static func appendJSONString(_ text: String, to line: inout String) {
        line += "\""
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5c }) else {
            line += text
            line += "\""
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case "\u{08}": line += "\\b"
            case "\u{0C}": line += "\\f"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// An entry read back from its JSON line.
    public init(jsonLine: String) throws {
        let object = try JSONDecoder().decode([String: String].self, from: Data(jsonLine.utf8))
        guard let text = object["time"], let time = Self.parseUTC(text), let levelName = object["level"],
              let level = Logger.Level(rawValue: levelName), let source = object["source"], let message = object["message"] else {
            throw LogEntryError.incomplete(jsonLine)
        }
        let rest = object.filter { !["time", "level", "source", "message", "task"].contains($0.key) }
        self.init(time: time, level: level, source: source, task: object["task"], message: message, metadata: rest.isEmpty ? nil : rest)
    }

    /// `time` (seconds since 1970) as `2026-05-01 14:03:07.215`, in local time.
    public static func localTime(_ time: Double) -> String {
        var seconds = time_t(time.rounded(.down)), parts = tm()
        localtime_r(&seconds, &parts)
        return stamp(parts, milliseconds: time - time.rounded(.down), between: " ", after: "")
    }

    static func utcTime(_ time: Double) -> String {
        var seconds = time_t(time.rounded(.down)), parts = tm()
        gmtime_r(&seconds, &parts)
        return stamp(parts, milliseconds: time - time.rounded(.down), between: "T", after: "Z")
    }

    /// `parts` as `YYYY-MM-DD<between>hh:mm:ss.mmm<after>`, each field zero-padded as
    /// `%04d`, `%02d` and `%03d` pad them (by hand: the coordinator's socket thread stamps
    /// every log line, and `String(format:)` was a twentieth of its time at 1,000 workers).
    static func stamp(_ parts: tm, milliseconds fraction: Double, between: String, after: String) -> String {
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        let milliseconds = Int32(fraction * 1000)
        return padded(parts.tm_year + 1900, 4) + "-" + padded(parts.tm_mon + 1, 2) + "-" + padded(parts.tm_mday, 2) + between
            + padded(parts.tm_hour, 2) + ":" + padded(parts.tm_min, 2) + ":" + padded(parts.tm_sec, 2) + "." + padded(milliseconds, 3) + after
    }

    static func parseUTC(_ text: String) -> Double? {
        let fields = text.split(whereSeparator: { "-T:.Z".contains($0) }).compactMap { Int32($0) }
        guard fields.count == 7 else { return nil }
        var parts = tm()
        parts.tm_year = fields[0] - 1900
        parts.tm_mon = fields[1] - 1
        parts.tm_mday = fields[2]
        parts.tm_hour = fields[3]
        parts.tm_min = fields[4]
        parts.tm_sec = fields[5]
        return Double(timegm(&parts)) + Double(fields[6]) / 1000
    }
}

/// Why a JSON log line could not be read back.
public enum LogEntryError: Error, CustomStringConvertible {
    /// The line lacks one of time, level, source and message, or one does not parse.
    case incomplete(String)

    public var description: String {
        switch self {
        case .incomplete(let line): "log line \(line.prefix(200)) lacks a parsable time, level, source or message; was it written by PruneSweep?"
        }
    }
}
