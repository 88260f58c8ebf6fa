import Foundation
import Protocol
import TaskRuntime
import Testing
@testable import Coordinator

/// File work off the socket thread: in order per key, side by side across keys; uploads
/// bounded by bytes and dropped when the store already holds them (ArtifactService).
@Suite struct FileWorkTests {
    /// Two keys on different lanes of `lanes`.
    static func keysOnTwoLanes(_ lanes: Int) -> (String, String) {
        let first = "worker-0"
        let second = (1...).lazy.map { "worker-\($0)" }.first { FileWork.lane(of: $0, among: lanes) != FileWork.lane(of: first, among: lanes) }!
        return (first, second)
    }

    @Test func jobsOfOneKeyRunInOrderAndOtherKeysRunBesideThem() {
        let files = FileWork(lanes: 2, wake: {})
        let (a, b) = Self.keysOnTwoLanes(2)
        let ran = Locked<[String]>([]), answered = Locked<[String]>([])
        let gate = DispatchSemaphore(value: 0)
        // a's first job waits for b's: were b queued behind it, the wait would time out.
        files.run(after: a, { () -> Bool in
            let opened = gate.wait(timeout: .now() + 120) == .success
            ran.with { $0.append("a1") }
            return opened
        }) { opened in answered.with { $0.append(opened ? "a1" : "a1 timed out") } }
        files.run(after: a, { ran.with { $0.append("a2") } }) { answered.with { $0.append("a2") } }
        files.run(after: b, { ran.with { $0.append("b1") }; gate.signal() }) { answered.with { $0.append("b1") } }
        files.finish()
        #expect(ran.with { $0 } == ["b1", "a1", "a2"])
        #expect(answered.with { $0 }.filter { $0.hasPrefix("a") } == ["a1", "a2"])
        #expect(files.pending == 0)
    }

    @Test func aDrainPastItsDeadlineLeavesTheRestInOrderAndWakesTheLoop() throws {
        let wakes = Locked(0)
        let files = FileWork(lanes: 1, wake: { wakes.with { $0 += 1 } })
        let answered = Locked<[Int]>([])
        for index in 1...3 { files.run(after: "w", { index }) { value in answered.with { $0.append(value) } } }
        // Each finished job wakes the loop once its answer is queued.
        let deadline = Date().addingTimeInterval(60)
        while wakes.with({ $0 }) < 3 && Date() < deadline { usleep(1_000) }
        try #require(wakes.with { $0 } == 3)
        // A deadline already passed: one answer is taken, the others wait, and the loop is woken for them.
        files.drain(until: 0)
        #expect(answered.with { $0 } == [1] && files.pending == 2 && wakes.with { $0 } == 4)
        files.drain()
        #expect(answered.with { $0 } == [1, 2, 3] && files.pending == 0)
    }

    @Test func lanesRunBelowThePriorityOfTheThreadThatMadeThem() {
        let files = FileWork(lanes: 2, wake: {})
        let own = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let seen = Locked<[Int32]>([])
        for key in ["worker-0", "worker-1", "worker-2"] {
            files.run(after: key, { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }) { nice in seen.with { $0.append(nice) } }
        }
        files.finish()
        #expect(seen.with { $0 } .count == 3 && seen.with { $0 }.allSatisfy { $0 == min(19, own + FileWork.niceness) }, "\(seen.with { $0 }) against \(own)")
    }

    static func service(bound: Int) throws -> (ArtifactService, FileWork, ArtifactStore, URL) {
        let directory = try JournalTests.directory()
        let store = try ArtifactStore(runDirectory: directory)
        let files = FileWork(lanes: 2, wake: {})
        return (ArtifactService(store: store, files: files, waitingBound: bound), files, store, directory)
    }

    @Test func uploadsWaitingToBeStoredCountAgainstTheBound() throws {
        let (artifacts, files, store, directory) = try Self.service(bound: 30)
        defer { try? FileManager.default.removeItem(at: directory) }
        let peer = Data([1]), bytes = Data(repeating: 7, count: 20), hash = ArtifactStore.hash(bytes)
        // Hold the worker's lane, so its whole upload waits in memory.
        let gate = DispatchSemaphore(value: 0)
        files.run(after: "w", { _ = gate.wait(timeout: .now() + 120) }) {}
        #expect(artifacts.receive(ArtifactChunk(hash: hash, offset: 0, total: 20), bytes, from: peer, lane: "w", stored: { _ in }) == .complete)
        #expect(artifacts.waitingBytes == 20 && !artifacts.isFull)
        // A second worker's partial upload takes it over the bound.
        let other = Data(repeating: 9, count: 40)
        #expect(artifacts.receive(ArtifactChunk(hash: ArtifactStore.hash(other), offset: 0, total: 40), other.prefix(20), from: Data([2]), lane: "v",
                                  stored: { _ in }) == .partial)
        #expect(artifacts.waitingBytes == 40 && artifacts.isFull)
        artifacts.dropAll(from: Data([2]))
        #expect(artifacts.waitingBytes == 20)
        gate.signal()
        files.finish()
        #expect(artifacts.waitingBytes == 0 && !artifacts.isFull)
        #expect(store.contains(hash))
    }

    @Test func anUploadTheStoreHoldsIsDroppedWithoutStoringItAgain() throws {
        let (artifacts, files, store, directory) = try Self.service(bound: 1 << 20)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bytes = Data(repeating: 3, count: 10), hash = try store.put(bytes), peer = Data([1])
        let first = ArtifactChunk(hash: hash, offset: 0, total: 10), second = ArtifactChunk(hash: hash, offset: 5, total: 10)
        #expect(artifacts.receive(first, bytes.prefix(5), from: peer, lane: "w", stored: { _ in }) == .known)
        #expect(artifacts.waitingBytes == 0 && files.pending == 0)
        #expect(artifacts.receive(second, bytes.suffix(5), from: peer, lane: "w", stored: { _ in }) == .known)
        // The next upload of it is dropped again; a chunk out of order is still one.
        #expect(artifacts.receive(first, bytes.prefix(5), from: peer, lane: "w", stored: { _ in }) == .known)
        #expect(artifacts.receive(first, bytes.prefix(5), from: peer, lane: "w", stored: { _ in }) == .outOfOrder(received: 5))
        #expect(artifacts.duplicateUploads == 2 && files.pending == 0)
        // An artifact the store lacks is stored.
        let fresh = Data(repeating: 4, count: 10)
        #expect(artifacts.receive(ArtifactChunk(hash: ArtifactStore.hash(fresh), offset: 0, total: 10), fresh, from: peer, lane: "w", stored: { _ in }) == .complete)
        files.finish()
        #expect(store.contains(ArtifactStore.hash(fresh)))
    }
}
