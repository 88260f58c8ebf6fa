import Foundation
import Synchronization

/// SIGTERM and SIGINT, the ways a user, a scheduler or a test asks a program to stop.
///
/// A program inherits the signals its parent blocked or ignored, across `exec`, and
/// Foundation's `Process` on Linux spawns without resetting them. libdispatch's worker
/// threads block every asynchronous signal, and Swift concurrency (so every Swift Testing
/// test) runs on them: a coordinator or worker started from a test began with SIGTERM and
/// SIGINT blocked, so `terminate()` left the signal pending for ever and a `--keep-serving`
/// coordinator outlived its test run. `restore()` undoes that at start; `catchFirst()` turns
/// the first signal into a request the program answers in its own time.
public enum StopSignals {
    private static let caught = Atomic<Int32>(0)
    private static let handled: [Int32] = [SIGTERM, SIGINT]

    /// Unblocks SIGTERM and SIGINT and gives them their default action (the process ends).
    /// Call it first in `main`, before any thread starts: a thread inherits its creator's mask.
    public static func restore() {
        var set = sigset_t()
        sigemptyset(&set)
        for number in handled {
            sigaddset(&set, number)
            signal(number, SIG_DFL)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// From now on the first SIGTERM or SIGINT is only recorded (`requested`) for the program
    /// to stop cleanly; a second one ends the process at once, with status 128 + its number.
    public static func catchFirst() {
        _ = caught.load(ordering: .relaxed)  // initialised here, never first in the handler
        for number in handled {
            signal(number) { number in
                guard !StopSignals.caught.compareExchange(expected: 0, desired: number, ordering: .relaxed).exchanged else { return }
                _exit(128 + number)
            }
        }
    }

    /// The signal that asked this process to stop since `catchFirst()`, if one did.
    public static var requested: Int32? {
        let number = caught.load(ordering: .relaxed)
        return number == 0 ? nil : number
    }

    /// `SIGTERM` or `SIGINT` (or `signal N`), for log lines.
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        default: "signal \(number)"
        }
    }
}
