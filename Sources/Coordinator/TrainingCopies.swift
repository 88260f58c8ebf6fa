/// The running copies of training tasks (an original, and at most one backup of it) and how
/// far each has come, for the scheduler's expected finishing times; and the attempts that
/// lost the race to another copy, whose late messages are dropped quietly.
struct TrainingCopies: Sendable {
    /// One running copy of a training.
    struct Copy: Sendable, Equatable {
        /// The task, the attempt and the worker (and its host) running it.
        var task: String, attempt: Int, worker: String, host: String
        /// What it trains.
        var workload: TrainingWorkload
        /// Epochs it has reported done, and when it was last dispatched or progressed.
        var epochsDone: Int, lastHeard: Double
        /// Whether it has reported an epoch since it started.
        var reported = false
        /// The attempt this copy backs up, when it is a backup.
        var backupOf: Int?
    }

    private var copies: [String: [Int: Copy]] = [:]
    private var checkpointEpochs: [String: Int] = [:]
    /// The worker of each attempt that lost a race, by "task#attempt".
    private var superseded: [String: String] = [:]
    /// Tasks that have had a backup in this run: at most one each.
    private(set) var backedUp: Set<String> = []

    /// An empty record.
    init() {}

    /// Copy `attempt` of `task` started on `worker` at `time`, from the task's latest
    /// checkpoint (`fromEpoch`, 0 when the coordinator does not know it).
    mutating func started(_ task: String, attempt: Int, worker: String, host: String, workload: TrainingWorkload,
                          fromEpoch: Int, at time: Double, backupOf: Int? = nil) {
        let epoch = max(fromEpoch, checkpointEpochs[task] ?? 0)
        copies[task, default: [:]][attempt] = Copy(task: task, attempt: attempt, worker: worker, host: host, workload: workload,
                                                   epochsDone: epoch, lastHeard: time, backupOf: backupOf)
        if backupOf != nil { backedUp.insert(task) }
    }

    /// Copy `attempt` of `task` reported epoch `epoch` at `time`, saying it took
    /// `claimedSeconds`. Returns the epoch's seconds for its worker's speed: the time since
    /// the copy's previous epoch on the coordinator's clock (so a peer cannot claim speed it
    /// lacks), or for its first epoch, whose interval includes fetching inputs, the claimed
    /// time capped at that interval (nil without a claim). Nil for a copy not tracked or an
    /// epoch that did not advance.
    mutating func progressed(_ task: String, attempt: Int, epoch: Int, claimedSeconds: Double?, at time: Double) -> (copy: Copy, seconds: Double?)? {
        guard var copy = copies[task]?[attempt], epoch > copy.epochsDone else { return nil }
        let interval = time - copy.lastHeard
        let epochs = Double(epoch - copy.epochsDone)
        let seconds = copy.reported ? interval / epochs : claimedSeconds.map { min($0, interval) }
        copy.epochsDone = epoch
        copy.lastHeard = time
        copy.reported = true
        copies[task]?[attempt] = copy
        return (copy, seconds)
    }

    /// A checkpoint of `task` after `epoch` arrived; returns whether it is the task's latest
    /// (a slower copy's older checkpoint must not replace the resume point of a faster one).
    mutating func checkpointed(_ task: String, epoch: Int) -> Bool {
        guard epoch > checkpointEpochs[task] ?? 0 else { return false }
        checkpointEpochs[task] = epoch
        return true
    }

    /// The epoch of `task`'s latest checkpoint known in this run (0 when none).
    func checkpointEpoch(_ task: String) -> Int { checkpointEpochs[task] ?? 0 }

    /// Copy `attempt` of `task` ended (finished, failed, lost or cancelled).
    mutating func ended(_ task: String, attempt: Int) {
        copies[task]?[attempt] = nil
        if copies[task]?.isEmpty ?? false { copies[task] = nil }
    }

    /// Copy `attempt` of `task` lost the race to another copy: it ends, and what its worker
    /// still says of it is dropped without counting against anyone.
    mutating func supersede(_ task: String, attempt: Int) {
        guard let copy = copies[task]?[attempt] else { return }
        ended(task, attempt: attempt)
        superseded["\(task)#\(attempt)"] = copy.worker
    }

    /// Whether `attempt` of `task` was `worker`'s copy and lost the race to another copy
    /// (anyone else speaking of it is a peer that never held it).
    func isSuperseded(_ task: String, attempt: Int, on worker: String) -> Bool { superseded["\(task)#\(attempt)"] == worker }

    /// The running copies of `task`.
    func of(_ task: String) -> [Copy] { copies[task].map { Array($0.values) } ?? [] }

    /// Every running copy.
    var all: [Copy] { copies.values.flatMap(\.values) }

    /// Seconds `copy` is expected to need still at `time`, at `imagesPerSecond`.
    static func secondsLeft(_ copy: Copy, imagesPerSecond: Double, at time: Double) -> Double {
        max(0, copy.workload.imagesLeft(after: copy.epochsDone) / imagesPerSecond - (time - copy.lastHeard))
    }
}
