import Foundation
import Protocol

/// Every long-lived process a coordinator test starts (coordinators, workers, busy loops):
/// `stop` kills it with everything it started (the workers a coordinator launched) when its
/// test ends, pass or fail, and whatever a test could not stop (it hung past its time limit)
/// is killed when the test runner exits.
enum StartedProcesses {
    private static let live = Locked<Set<Int32>>([])
    private static let exitHook = Locked(false)

    /// Runs `process` and keeps it until `stop`.
    static func run(_ process: Process) throws {
        let hooked = exitHook.with { installed in
            defer { installed = true }
            return installed
        }
        if !hooked { atexit { StartedProcesses.stopAll() } }
        try process.run()
        live.with { _ = $0.insert(process.processIdentifier) }
    }

    /// Kills `process` and its descendants (SIGKILL) unless it has exited, and reaps it.
    static func stop(_ process: Process) {
        if process.isRunning { killTree(process.processIdentifier) }
        process.waitUntilExit()
        live.with { _ = $0.remove(process.processIdentifier) }
    }

    private static func stopAll() {
        for pid in live.with({ $0 }) { killTree(pid) }
    }

    /// SIGKILL to `root` and its descendants. Each is stopped first (SIGSTOP), and the tree
    /// read again until it shows none unstopped, so none starts another or is orphaned (and
    /// so lost from the tree) before it is found.
    static func killTree(_ root: Int32) {
        var stopped: Set<Int32> = [root]
        kill(root, SIGSTOP)
        var quietReads = 0
        while quietReads < 2 {
            let fresh = descendants(of: root).subtracting(stopped)
            if fresh.isEmpty {
                quietReads += 1
                usleep(10_000)
            }
            for pid in fresh {
                kill(pid, SIGSTOP)
                stopped.insert(pid)
            }
        }
        for pid in stopped { kill(pid, SIGKILL) }
    }

    /// The live descendants of `root`, from the parent field of /proc/PID/stat.
    static func descendants(of root: Int32) -> Set<Int32> {
        var children: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let parent = parent(of: pid) else { continue }
            children[parent, default: []].append(pid)
        }
        var found: Set<Int32> = [], frontier = [root]
        while let next = frontier.popLast() {
            for child in children[next] ?? [] where found.insert(child).inserted { frontier.append(child) }
        }
        return found
    }

    /// Whether `pid` has ended (a zombie nobody reaped yet counts as ended).
    static func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }

    /// The parent of `pid`: the field after the state in "PID (COMM) STATE PPID …" (the
    /// command may hold spaces and parentheses, so it is read after the last one).
    static func parent(of pid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }
}
