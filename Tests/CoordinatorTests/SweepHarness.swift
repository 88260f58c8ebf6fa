import Foundation
@testable import Coordinator

/// A scratch directory with a cluster file on a free loopback port, and the `coordinator`
/// program run in it as a user runs it (real worker processes, real sockets).
struct SweepHarness {
    let directory: URL

    init() throws { directory = try JournalTests.directory() }
    init(directory: URL) { self.directory = directory }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    /// The run directory of the sweep.
    var run: URL { directory.appendingPathComponent("run") }

    /// Writes `text` to a file of the scratch directory and returns its URL.
    func file(_ name: String, _ text: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// A cluster of `workers` local single-thread workers on a free port. Heartbeats are
    /// fast, but loose enough that a loaded test machine does not lose a worker by accident.
    func cluster(workers: Int, restarts: Int = 3) throws -> URL {
        try file("cluster-\(workers).json", """
            {"bind": "tcp://127.0.0.1:*", "heartbeatSeconds": 0.25, "missedHeartbeats": 16, "restarts": \(restarts),
             "hosts": [{"name": "localhost", "workers": \(workers), "threads": 1}]}
            """)
    }

    /// Starts the coordinator with its output going to `output` (read it while it runs).
    func start(_ arguments: [String], output: URL) throws -> Process {
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = CoordinatorProcessTests.coordinator
        process.arguments = CoordinatorProcessTests.withoutDashboard(arguments)
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try StartedProcesses.run(process)
        return process
    }

    /// Waits up to `seconds` for `condition`; returns whether it held.
    static func wait(seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// The resident memory of process `pid` in KiB (VmRSS of /proc/PID/status).
    static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }

    /// The process id the coordinator printed for a started worker.
    static func pid(of worker: String, in output: String) -> Int32? {
        let marker = "started worker \(worker) (pid "
        guard let range = output.range(of: marker, options: .backwards) else { return nil }
        return Int32(output[range.upperBound...].prefix { $0.isNumber })
    }
}

extension Journal {
    /// The workers of `task`'s attempts that are not backup copies, in order: a worker left
    /// idle near a sweep's end may back up a running training (docs/cluster.md) whenever its
    /// speed estimate, measured on a loaded machine, makes the copy look clearly faster, so
    /// tests about reruns after a fault count only these.
    func runWorkers(_ task: String) throws -> [String] {
        try attemptRecords(task).filter { $0.backupOf == nil }.map(\.worker)
    }
}
