import Foundation
import Testing
@testable import Model

/// The per-machine cache of measured answers: measured once and read after, completed where
/// it falls short, dropped only while it is the answer that was judged stale, and kept in
/// the format each cache file had before.
@Suite struct MeasurementCacheTests {
    struct Answer: Codable, Equatable {
        var values: [String: Int]
        var measuredAt: Date
    }

    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("measurement-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func measuresOnceCompletesAndDropsOnlyTheStaleAnswer() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = MeasurementCache<Answer>(url: folder.appendingPathComponent("answer.json"), format: .readable)
        var measurements = 0
        func answer(needing keys: [String]) -> Answer {
            cache.answer(usable: { kept in keys.allSatisfy { kept.values[$0] != nil } }) { kept in
                measurements += 1
                var answer = kept ?? Answer(values: [:], measuredAt: Date(timeIntervalSince1970: 1_000_000))
                for key in keys where answer.values[key] == nil { answer.values[key] = measurements }
                return answer
            }
        }
        #expect(cache.kept() == nil)
        let first = answer(needing: ["a"])
        #expect(first.values == ["a": 1] && measurements == 1)
        #expect(answer(needing: ["a"]) == first && measurements == 1, "a kept answer is read, not measured again")
        #expect(answer(needing: ["a", "b"]).values == ["a": 1, "b": 2], "what is missing is measured and added to what is kept")
        #expect(cache.kept()?.values == ["a": 1, "b": 2])
        let text = try String(contentsOf: cache.url, encoding: .utf8)
        #expect(text.contains("1970-01-12T13:46:40Z") && text.contains("\n"), "readable: ISO 8601 dates, indented: \(text)")

        cache.drop { $0.measuredAt != first.measuredAt }
        #expect(cache.kept() != nil, "another measurement's answer stays")
        cache.drop { $0.measuredAt == first.measuredAt }
        #expect(cache.kept() == nil && measurements == 2)
    }

    /// A measurement that fails is thrown and keeps nothing; without a writable directory the
    /// answer is measured and nothing kept.
    @Test func failureKeepsNothingAndUnwritableCacheStillAnswers() throws {
        struct Failed: Error {}
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = MeasurementCache<Answer>(url: folder.appendingPathComponent("answer.json"))
        #expect(throws: Failed.self) { try cache.answer { (_: Answer?) throws(Failed) -> Answer in throw Failed() } }
        #expect(cache.kept() == nil)

        let blocker = folder.appendingPathComponent("file")
        #expect(FileManager.default.createFile(atPath: blocker.path, contents: Data()))
        let unwritable = MeasurementCache<Answer>(url: blocker.appendingPathComponent("answer.json"))
        let answer = unwritable.answer { _ in Answer(values: ["a": 1], measuredAt: Date()) }
        #expect(answer.values == ["a": 1] && unwritable.kept() == nil)
    }
}
