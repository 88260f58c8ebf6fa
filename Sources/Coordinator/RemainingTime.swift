import Foundation

/// A time left, as the progress lines print it: seconds under two minutes, minutes under two
/// hours, hours after; "ETA 0 min" told nothing when the end was seconds away.
public enum RemainingTime {
    /// `seconds` as "45 s", "12 min" or "3.2 h".
    public static func describe(_ seconds: Double) -> String {
        let seconds = max(0, seconds)
        if seconds < 120 { return String(format: "%.0f s", seconds) }
        if seconds < 7_200 { return String(format: "%.0f min", seconds / 60) }
        return String(format: "%.1f h", seconds / 3_600)
    }
}
