import Foundation

/// File work of the socket thread done on other threads: storing uploads (hash and write),
/// reading artifacts to serve, and checking a result's outputs (`ResultCheck`). Jobs run on
/// a few lanes, each a serial queue; jobs of one key (a worker's name) share a lane and run
/// in the order they were asked for, which keeps the order that matters: a worker's upload
/// is stored before its result that names it is checked. Jobs of different keys run side by
/// side. Each job's answer is handed back to the socket thread by `drain` (per lane in
/// order), so the state stays the socket thread's alone. Results queued are bounded by the
/// workers' slots (a worker reports only the tasks it holds); upload bytes waiting are
/// bounded by the `ArtifactService`.
final class FileWork: @unchecked Sendable {
    private let lanes: [BackgroundThread]
    private let lock = NSLock()
    private var answers: [@Sendable () -> Void] = []
    private var queued = 0
    private var nextLane = 0
    private let wake: @Sendable () -> Void

    /// Lanes by default: one per core, at least two (the socket thread needs little of a core
    /// while the lanes hash and parse).
    static var defaultLanes: Int { min(8, max(2, ProcessInfo.processInfo.activeProcessorCount)) }

    /// File work on `lanes` threads whose finished jobs call `wake` (the socket loop's, so
    /// `drain` runs soon). The lanes run below the socket thread's priority
    /// (`BackgroundThread`): on a busy core the socket thread's turns come first.
    init(lanes: Int = FileWork.defaultLanes, wake: @escaping @Sendable () -> Void) {
        self.lanes = (0..<max(1, lanes)).map { BackgroundThread(name: "prunesweep-files-\($0)", niceness: Self.niceness) }
        self.wake = wake
    }

    /// Nice steps of the lanes below the socket thread: weight 335 against 1,024, so two lanes
    /// still get two fifths of a core that the socket thread keeps busy (checks must not back up).
    static let niceness: Int32 = 5

    /// Jobs asked for and not yet drained.
    var pending: Int { lock.withLock { queued } }

    /// Runs `job` off the socket thread, after every earlier job of `key` (nil: any lane);
    /// `then` gets its value on the socket thread (`drain`).
    func run<T: Sendable>(after key: String?, _ job: @escaping @Sendable () -> T, then: @escaping @Sendable (T) -> Void) {
        let lane = lock.withLock { () -> BackgroundThread in
            queued += 1
            if let key { return lanes[Self.lane(of: key, among: lanes.count)] }
            nextLane = (nextLane + 1) % lanes.count
            return lanes[nextLane]
        }
        lane.async { [self] in
            let value = job()
            lock.withLock { answers.append { then(value) } }
            wake()
        }
    }

    /// The lane of `key`: a stable hash of its bytes (FNV-1a), the same in every process.
    static func lane(of key: String, among count: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(hash % UInt64(count))
    }

    /// Hands the finished jobs' values to their `then` (call on the socket thread); the
    /// answers of one key come in the order its jobs were asked for. With `until` (an uptime
    /// in nanoseconds), answers left when it has passed wait for the next drain, still first
    /// in line, and the loop is woken for it: a burst of verdicts does not hold the socket
    /// thread's turn for tens of milliseconds.
    func drain(until deadline: UInt64 = .max) {
        let ready = lock.withLock { () -> [@Sendable () -> Void] in
            defer { answers.removeAll() }
            return answers
        }
        var taken = 0
        while taken < ready.count {
            ready[taken]()
            lock.withLock { queued -= 1 }
            taken += 1
            if DispatchTime.now().uptimeNanoseconds >= deadline { break }
        }
        guard taken < ready.count else { return }
        lock.withLock { answers.insert(contentsOf: ready[taken...], at: 0) }
        wake()
    }

    /// Waits for every job asked for so far to finish, then drains (a stopping server's last turn).
    func finish() {
        for lane in lanes { lane.waitUntilIdle() }
        drain()
    }
}
