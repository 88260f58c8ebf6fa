import Foundation
import Protocol
import Testing
@testable import Coordinator

/// A peer sending 10,000 malformed frames costs the coordinator a few log lines and journal
/// rows (one per reason and 10 s, with counts that add up exactly), and no memory to speak of.
@Suite struct GarbageFrameTests {
    @Test(.timeLimit(.minutes(10)))
    func tenThousandGarbageFramesAreCountedExactlyAndLoggedOncePerReason() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = #"{"name":"garbage","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.2],"overrides":{"epochs":1}}"#
        let (coordinator, log, endpoint) = try HostilePeerTests.start(harness, sweep: sweep)
        defer { StartedProcesses.stop(coordinator) }

        let noisy = try HandWrittenPeer(endpoint: endpoint, name: "noisy")
        // The hello is answered before any garbage goes out: the baseline is a running server.
        _ = noisy.collect(seconds: 0.5)
        let before = try #require(SweepHarness.residentKiB(coordinator.processIdentifier))
        let valid = Wire.encode(.ready(Ready(credit: 0)))
        let kinds: [[Data]] = [
            [Data("x".utf8)],                                            // too few frames
            [Data("garbage/9".utf8), valid[1], valid[2]],                // unknown protocol
            [valid[0], Data("nonsense".utf8), valid[2]],                 // unknown type
            [valid[0], valid[1], Data("{not json".utf8)],                // malformed header
            [valid[0], valid[1], valid[2], Data("payload".utf8)],        // a payload where none belongs
        ]
        let frames = 10_000
        for index in 0..<frames {
            var message = kinds[index % kinds.count]
            // The details differ from frame to frame; the reasons do not.
            switch index % kinds.count {
            case 0: message = [Data(count: index % 64)]
            case 2: message[1] = Data("nonsense-\(index)".utf8)
            default: break
            }
            try noisy.sendRaw(message)
        }
        // One connection's messages are handled in order: once this request is answered,
        // every garbage frame before it has been.
        try noisy.send(.artifactGet(ArtifactRequest(hash: String(repeating: "0", count: 64), offset: 0, length: 1)))
        let answered = noisy.collect(seconds: 30).contains { if case .artifactChunk = $0 { true } else { false } }
        #expect(answered, "the coordinator did not answer after the garbage")
        let after = try #require(SweepHarness.residentKiB(coordinator.processIdentifier))
        print("coordinator VmRSS before \(frames) garbage frames: \(before) KiB, after: \(after) KiB (\(after - before) KiB more)")
        #expect(after - before < 64 * 1024, "the coordinator's resident memory grew by \(after - before) KiB over \(frames) garbage frames")
        noisy.close()

        let text = try HostilePeerTests.finish(harness, coordinator, log: log, endpoint: endpoint)
        let lines = text.split(separator: "\n").count
        print("coordinator log: \(lines) lines in all, \(text.split(separator: "\n").filter { $0.contains("rejected") }.count) about rejected frames")
        #expect(lines < 100, "the coordinator's log has \(lines) lines: \(text)")
        #expect(text.contains("rejected frames: \(frames)"), "\(text)")
        let journal = try Journal(directory: harness.run)
        #expect(try journal.occurrences("rejected-frame") == frames)
        #expect(try journal.eventCount("rejected-frame") <= 2 * kinds.count, "one event per reason and interval, not one per frame")
        try HostilePeerTests.expectEachResultAcceptedOnce(harness, sweep: sweep)
    }
}
