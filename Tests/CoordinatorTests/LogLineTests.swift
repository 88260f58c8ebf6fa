import Foundation
import Logging
@testable import SweepLog
import Testing

/// Log lines carry their time, level and source; the terminal shows the chosen levels as
/// human lines and the file keeps debug and up as JSON lines that parse.
@Suite struct LogLineTests {
    /// JSON lines written by hand are what `JSONEncoder` (sorted keys, slashes kept) wrote:
    /// every ASCII character, non-ASCII text, and metadata keys that take the encoder.
    @Test func jsonLinesAreWhatTheEncoderWrote() throws {
        let ascii = String(String.UnicodeScalarView((0...0x7f).compactMap(Unicode.Scalar.init)))
        let entries = [
            LogEntry(time: 1_796_601_612.215, level: .info, source: "coordinator", message: ascii),
            LogEntry(time: 0, level: .warning, source: "p1-7", task: "train dense seed 42", message: "é 😀 \u{2028}\u{2029} a/b \"q\"",
                     metadata: ["host": "gpu-box", "worker": "w\\1", "zeta": ""]),
            LogEntry(time: 86_399.5, level: .error, source: "coordinator", message: "m", metadata: ["Upper": "x", "key2": "y", "snake_case": "z"]),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for entry in entries {
            var object = entry.metadata ?? [:]
            object["time"] = LogEntry.utcTime(entry.time)
            object["level"] = entry.level.rawValue
            object["source"] = entry.source
            object["message"] = entry.message
            if let task = entry.task { object["task"] = task }
            #expect(entry.jsonLine == String(decoding: try encoder.encode(object), as: UTF8.self))
            #expect(try LogEntry(jsonLine: entry.jsonLine).message == entry.message)
        }
    }

    /// The stamps are padded by hand as `String(format:)` padded them, in UTC and local time.
    @Test(arguments: [0, 0.0005, 59.999, 86_399.5, 951_782_400.25, 1_796_601_612.007, 1_796_601_612.215, 4_102_444_799.9])
    func stampsAreWhatTheFormatMade(_ time: Double) {
        var seconds = time_t(time.rounded(.down)), utc = tm(), local = tm()
        gmtime_r(&seconds, &utc)
        localtime_r(&seconds, &local)
        let milliseconds = Int32((time - time.rounded(.down)) * 1000)
        func format(_ parts: tm, _ pattern: String) -> String {
            String(format: pattern, parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, milliseconds)
        }
        #expect(LogEntry.utcTime(time) == format(utc, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"))
        #expect(LogEntry.localTime(time) == format(local, "%04d-%02d-%02d %02d:%02d:%02d.%03d"))
    }

    @Test func humanLinesCarryTimeLevelAndSourceAndJSONLinesParse() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let terminalFile = directory.appendingPathComponent("terminal.txt"), jsonFile = directory.appendingPathComponent("logs/coordinator.jsonl")
        FileManager.default.createFile(atPath: terminalFile.path, contents: nil)
        let sink = LogSink(terminalLevel: .info, fileLevel: .debug, terminal: try FileHandle(forWritingTo: terminalFile))
        try sink.openFile(jsonFile)
        let before = Date().timeIntervalSince1970
        var log = Logger(label: "coordinator", sink: sink)
        log.info("started worker localhost-w1")
        log.debug("a detail for the file only")
        log[metadataKey: SweepLogHandler.workerKey] = "localhost-w1"
        log[metadataKey: SweepLogHandler.taskKey] = "train dense seed 42"
        log.warning("the coordinator has been silent for 7.5 s", metadata: ["host": "gpu-box"])
        sink.closeFile()

        let terminal = try String(contentsOf: terminalFile, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(terminal.count == 2, "the terminal shows info and up only: \(terminal)")
        let stamp = #/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /#
        #expect(terminal.allSatisfy { $0.contains(stamp) }, "\(terminal)")
        #expect(terminal[0].hasSuffix(" info     coordinator: started worker localhost-w1"), "\(terminal[0])")
        #expect(terminal[1].hasSuffix(" warning  localhost-w1 [train dense seed 42]: the coordinator has been silent for 7.5 s"), "\(terminal[1])")

        let lines = try String(contentsOf: jsonFile, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "the file keeps debug and up: \(lines)")
        let entries = try lines.map { try LogEntry(jsonLine: $0) }
        #expect(entries.map(\.level) == [.info, .debug, .warning])
        #expect(entries.map(\.source) == ["coordinator", "coordinator", "localhost-w1"])
        #expect(entries[2].task == "train dense seed 42" && entries[2].metadata == ["host": "gpu-box"])
        #expect(entries.allSatisfy { $0.time >= before - 0.001 && $0.time <= Date().timeIntervalSince1970 })
        // Any JSON reader takes them too, with the time as ISO 8601 UTC.
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            #expect(object["time"]?.contains(#/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/#) == true, "\(line)")
        }
    }
}
