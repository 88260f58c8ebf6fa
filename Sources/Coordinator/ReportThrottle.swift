import Foundation
import Protocol

/// Logs and journals repeated trouble (rejected frames, refused peers and messages, failed
/// handshakes) at most once per interval per reason, with counts, so a peer sending thousands
/// of bad frames costs a few lines and a few journal rows, not one each. The first occurrence
/// of a reason is reported at once; later ones are counted and reported together when the
/// interval has passed (`flushDue`) or at the end (`flushAll`). The counts add up exactly: the
/// journal's events of a kind sum (field `count`) to the occurrences. Safe from any thread
/// (the socket thread and the ZAP handler's both report).
final class ReportThrottle: Sendable {
    private struct Pending {
        var event: String
        var count = 0
        var lastReport = -Double.infinity
        var lastLine = ""
    }

    private let interval: Double
    private let state = Locked([String: Pending]())
    private let log: @Sendable (String) -> Void
    private let journal: Journal

    /// A throttle that reports through `log` and `journal` at most once per `interval` seconds per reason.
    init(interval: Double = 10, journal: Journal, log: @escaping @Sendable (String) -> Void) {
        self.interval = interval
        self.journal = journal
        self.log = log
    }

    /// One occurrence of `reason`: a journal event of kind `event`, and `line` for the log.
    func report(_ event: String, reason: String, line: String, now: Double = Date().timeIntervalSince1970) {
        let due = state.with { reports -> (Int, String)? in
            var pending = reports[reason] ?? Pending(event: event)
            pending.count += 1
            pending.lastLine = line
            defer { reports[reason] = pending }
            guard now - pending.lastReport >= interval else { return nil }
            defer { pending.count = 0; pending.lastReport = now }
            return (pending.count, line)
        }
        if let (count, line) = due { emit(event, reason: reason, count: count, line: line, repeated: false) }
    }

    /// Reports the counts of reasons whose interval has passed since their last report.
    func flushDue(now: Double = Date().timeIntervalSince1970) { flush { now - $0.lastReport >= interval } }

    /// Reports every count not yet reported (at the end of the sweep).
    func flushAll() { flush { _ in true } }

    private func flush(where isDue: (Pending) -> Bool) {
        let now = Date().timeIntervalSince1970
        let due = state.with { reports in
            reports.compactMap { reason, pending -> (String, Pending)? in
                guard pending.count > 0, isDue(pending) else { return nil }
                reports[reason]?.count = 0
                reports[reason]?.lastReport = now
                return (reason, pending)
            }
        }
        for (reason, pending) in due.sorted(by: { $0.0 < $1.0 }) {
            emit(pending.event, reason: reason, count: pending.count, line: pending.lastLine, repeated: true)
        }
    }

    private func emit(_ event: String, reason: String, count: Int, line: String, repeated: Bool) {
        log(repeated ? "\(count) more like this (\(reason)) since the last report, the last: \(line)" : line)
        try? journal.note(event, ["reason": reason, "count": String(count)])
    }
}
