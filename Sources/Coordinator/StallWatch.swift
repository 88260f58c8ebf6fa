/// The progress watchdog's clock: when each running task last showed progress, and how long
/// it may go without. A worker that heartbeats but never progresses (a wedged GPU, a
/// deadlocked task thread) would otherwise hold its tasks forever; liveness only sees the
/// socket thread. Progress is a `progress` message, or an artifact request or upload from the
/// task's holder (only its task thread sends those).
struct StallWatch {
    /// The cluster's fixed limit (`stallSeconds`); nil derives it from the epochs seen.
    let fixedLimit: Double?
    /// The derived limit is this many times the slowest epoch seen, and at least `floor`
    /// seconds: a slow epoch is normal, ten of them in silence are not.
    static let epochFactor = 5.0, floor = 600.0
    private var lastProgress: [String: Double] = [:]
    private var slowestEpoch = 0.0

    /// A watch with the cluster's limit, or a derived one.
    init(fixedLimit: Double?) { self.fixedLimit = fixedLimit }

    /// Seconds a task may go without progress: the cluster's `stallSeconds`, or 5× the
    /// slowest epoch seen in this run (one sweep, one preset) and at least 10 minutes.
    var limit: Double { fixedLimit ?? max(Self.floor, Self.epochFactor * slowestEpoch) }

    /// `task` progressed (or was just dispatched or adopted) at `time`. An epoch's time as its
    /// worker reported it counts towards the derived limit, capped at the time since the
    /// task's last progress: a peer cannot stretch everyone's limit by claiming slow epochs.
    mutating func progressed(_ task: String, at time: Double, epochSeconds: Double? = nil) {
        if let epochSeconds, epochSeconds.isFinite, let last = lastProgress[task] {
            slowestEpoch = max(slowestEpoch, min(epochSeconds, time - last))
        }
        lastProgress[task] = time
    }

    /// `task` is no longer running anywhere.
    mutating func forget(_ task: String) { lastProgress[task] = nil }

    /// Seconds since `task` last progressed, when that is longer than the limit.
    func stalled(_ task: String, at time: Double) -> Double? {
        guard let last = lastProgress[task], time - last > limit else { return nil }
        return time - last
    }
}
