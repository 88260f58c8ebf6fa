/// MapReduce's backup tasks: when nothing is left to start and a worker is idle, the
/// training expected to finish last gets a second copy on that worker, if it would finish
/// there clearly sooner. The first result wins (the journal accepts one per task) and the
/// other copy is cancelled.
enum BackupTasks {
    /// A backup starts only when its expected time is at most the original's expected
    /// remaining time divided by this: a backup costs a worker and a transfer, and speed
    /// estimates of workers sharing cores are off by tens of percent, so only a clear gain
    /// is worth a second copy.
    static let gain = 2.0

    /// A running training with one copy, as a backup would see it.
    struct Running: Sendable, Equatable {
        /// The task and the attempt that runs it.
        var task: String, attempt: Int
        /// Its workload key (speeds are per key).
        var workload: String
        /// Seconds its copy is expected to need still; nil when unknown (never backed up).
        var secondsLeft: Double?
        /// Images a backup would train: from the task's latest checkpoint to the end.
        var imagesForBackup: Double
        /// Workers that may not run the backup: its holder, and workers it failed on.
        var excluded: Set<String>
    }

    /// The backup to start on an idle worker.
    struct Choice: Sendable, Equatable {
        /// The task and the attempt the backup copies.
        var task: String, original: Int
        /// The original's expected remaining seconds and the backup's expected seconds.
        var originalSeconds: Double, backupSeconds: Double
    }

    /// The backup for `idle`, whose speed per workload key is `speeds`: among `running`
    /// trainings it may take, the one expected to finish last, when `idle` would finish it
    /// at least `gain` times sooner; nil otherwise (then no backup: the latest one is the
    /// only one whose gain shortens the sweep).
    static func choose(for idle: String, speeds: [String: Double], running: [Running]) -> Choice? {
        choose(for: idle, speeds: speeds, latestFirst: latestFirst(running))
    }

    /// `running` with an expected remaining time, the longest first; ties keep their order,
    /// so the first one an idle worker may take is the one `choose` picks.
    static func latestFirst(_ running: [Running]) -> [Running] {
        running.filter { $0.secondsLeft != nil }.sorted { ($0.secondsLeft ?? 0) > ($1.secondsLeft ?? 0) }
    }

    /// `choose` over trainings already in `latestFirst` order: a dispatch with many idle
    /// workers orders them once and each worker looks only as far as the first it may take
    /// (filtering every running training per idle worker was a sixth of the socket thread at
    /// 1,000 workers).
    static func choose(for idle: String, speeds: [String: Double], latestFirst running: [Running]) -> Choice? {
        guard let latest = running.first(where: { !$0.excluded.contains(idle) }),
              let left = latest.secondsLeft, let speed = speeds[latest.workload], speed > 0 else { return nil }
        let backup = latest.imagesForBackup / speed
        // Strictly sooner: a copy expected to tie (two copies with nothing left, at a sweep's end) only doubles the work.
        guard backup * gain < left else { return nil }
        return Choice(task: latest.task, original: latest.attempt, originalSeconds: left, backupSeconds: backup)
    }
}
