import Foundation

/// Who runs what, as a value driven by events and asked for decisions, with no socket, file
/// or clock of its own (times are arguments): the workers' slots and credit, the tasks each
/// runs, where tasks failed, learned speeds, running training copies and the progress
/// watchdog. `place` hands ready tasks to workers with credit (never more than a worker's
/// slots, nor a host's `maxTasks`), holds a training back from a much slower worker when a
/// faster one is about to be free (`TrainingPlacement`), and when nothing is left to start
/// gives idle workers backup copies of the trainings expected to finish last
/// (`BackupTasks`). Failures and stalls count against a worker until it is quarantined. A
/// result received (`delivered`) frees its worker's slot at once, while its outputs are
/// checked: the task stays the worker's until the verdict (`finished` or `failed`).
struct Scheduler {
    /// One worker as the scheduler sees it.
    struct Worker: Equatable {
        /// Its name, host, and cluster.json host (`group`, where `maxTasks` applies).
        var name: String, host: String, group: String?
        /// Tasks it may hold at once, and tasks it asked for and has not been given.
        var slots: Int, credit = 0
        /// Its tasks with their attempt numbers (0 while the journal numbers a placed one).
        var running: [String: Int] = [:]
        /// Those of its tasks whose result it delivered and whose outputs are being checked:
        /// still its own (the verdict is taken from it), but no longer run by it.
        var delivered: Set<String> = []
        /// Tasks it failed or stalled in a row; no more work once quarantined.
        var consecutiveFailures = 0, quarantined = false

        /// Tasks it runs: those it holds, less those whose result it delivered.
        var busy: Int { running.count - delivered.count }
    }

    /// A ready task as `place` sees it: its id and, for a training, its workload.
    struct Ready: Equatable {
        var id: String, workload: TrainingWorkload?
    }

    /// What `place` decided.
    enum Decision: Equatable {
        /// Start `task` on `worker` (its slot is reserved; report the attempt with `started`).
        case start(task: String, worker: String)
        /// Start a backup copy on `worker` (reserved likewise).
        case backup(BackupTasks.Choice, worker: String)
        /// `task` waits for `faster` rather than run on `worker`; `firstTime` the first time the
        /// task is held (for the log and journal: in a fleet of a thousand workers a task may
        /// be held from hundreds), with the expected seconds there, until `faster` is free, and on it.
        case hold(task: String, worker: String, faster: String, firstTime: Bool, slowSeconds: Double, freeIn: Double, fastSeconds: Double)
    }

    /// Failed or stalled tasks in a row before a worker is quarantined; tasks at once per host group.
    let quarantineAfter: Int, hostCaps: [String: Int]
    /// The workers by name.
    private(set) var workers: [String: Worker] = [:]
    /// Workers each task failed or stalled on (it retries elsewhere when it can).
    private(set) var failedOn: [String: Set<String>] = [:]
    /// Learned training speeds, and the running copies of trainings.
    private(set) var speeds: WorkerSpeed
    private(set) var copies = TrainingCopies()
    /// The progress watchdog.
    private(set) var stallWatch: StallWatch
    /// When each worker last delivered a result: it asks for its next task within moments.
    private var finishedAt: [String: Double] = [:]
    /// Trainings held back, noted once per task.
    private var heldNoted: Set<String> = []
    /// When held trainings should be looked at again.
    private(set) var retryAt: Double?
    /// Workers running each task (its copies).
    private var holders: [String: Set<String>] = [:]

    /// A worker that just delivered a result counts as free for this long, awaiting its
    /// `ready`; a worker with a free slot that asks for nothing is not waited for.
    static let readyGrace = 5.0

    /// A scheduler with the cluster's limits, speeds learned before, and the stall limit.
    init(quarantineAfter: Int, hostCaps: [String: Int], speeds: WorkerSpeed = WorkerSpeed(), stallSeconds: Double? = nil) {
        self.quarantineAfter = quarantineAfter
        self.hostCaps = hostCaps
        self.speeds = speeds
        stallWatch = StallWatch(fixedLimit: stallSeconds)
    }

    // MARK: workers

    /// `name` joined with `slots`, still running `running` (attempts by task, adopted or carried).
    mutating func joined(_ name: String, host: String, group: String?, slots: Int, running: [String: Int]) {
        workers[name] = Worker(name: name, host: host, group: group, slots: slots, running: running)
        for task in running.keys { holders[task, default: []].insert(name) }
    }

    /// `name` left (lost, or replaced by a new session); returns the tasks it ran, whose
    /// copies end (report each with `lost`).
    mutating func left(_ name: String) -> [String: Int] {
        guard let worker = workers.removeValue(forKey: name) else { return [:] }
        for task in worker.running.keys { holders[task]?.remove(name) }
        return worker.running
    }

    /// Tasks `worker` may be given now: its credit, less what its slots cannot run beside the
    /// tasks it runs (a peer asking for more than it can run gets no more). A delivered result
    /// leaves its slot, but at most `slots` of them at once (results being checked stay
    /// bounded by the fleet's slots), and none while their verdicts could still quarantine
    /// the worker (a quarantined worker must not be running a task it was just given).
    func capacity(_ worker: Worker) -> Int {
        let verdictsMayQuarantine = worker.consecutiveFailures + worker.delivered.count >= quarantineAfter
        let occupied = verdictsMayQuarantine ? worker.running.count : max(worker.busy, worker.running.count - worker.slots)
        return max(0, min(worker.credit, worker.slots - occupied))
    }

    /// `name` asked for `credit` more tasks (its credit never exceeds its slots).
    mutating func granted(_ name: String, credit asked: Int) {
        guard var worker = workers[name] else { return }
        worker.credit = min(worker.slots, worker.credit + max(0, min(asked, worker.slots)))
        workers[name] = worker
    }

    /// Whether `name` holds `attempt` of `task`.
    func holds(_ name: String, _ task: String, attempt: Int) -> Bool { workers[name]?.running[task] == attempt }

    /// Whether some worker runs a copy of `task`.
    func copyRuns(_ task: String) -> Bool { !(holders[task]?.isEmpty ?? true) }

    /// The workers running a copy of `task`.
    func holders(of task: String) -> Set<String> { holders[task] ?? [] }

    // MARK: tasks

    /// The journal numbered a placed task `attempt` (or an adopted one): its copy is followed
    /// from `fromEpoch` (its checkpoint) and the watchdog starts.
    mutating func started(_ task: String, attempt: Int, on name: String, workload: TrainingWorkload?, at time: Double, backupOf: Int? = nil) {
        guard let worker = workers[name] else { return }
        workers[name]?.running[task] = attempt
        holders[task, default: []].insert(name)
        stallWatch.progressed(task, at: time)
        if let workload {
            copies.started(task, attempt: attempt, worker: name, host: worker.host, workload: workload, fromEpoch: copies.checkpointEpoch(task),
                           at: time, backupOf: backupOf)
        }
    }

    /// `name` delivered its result of `attempt` of `task`, whose outputs are now checked: its
    /// slot is free for its next task (a worker asks again as soon as its result is sent), and
    /// the task stays its own until `finished` or `failed` takes the verdict. Anything else (an
    /// attempt it does not hold) changes nothing.
    mutating func delivered(_ task: String, attempt: Int, by name: String, at time: Double) {
        guard holds(name, task, attempt: attempt) else { return }
        workers[name]?.delivered.insert(task)
        finishedAt[name] = time
    }

    /// A placed task did not start after all (the journal refused it): its slot is free again.
    mutating func unplaced(_ task: String, on name: String) {
        release(task, from: name)
        workers[name]?.credit += 1
    }

    /// Activity of the tasks `name` holds (an artifact fetched or uploaded by its task thread).
    mutating func active(_ name: String, at time: Double) {
        for task in workers[name]?.running.keys.map({ $0 }) ?? [] { stallWatch.progressed(task, at: time) }
    }

    /// An epoch of `attempt` of `task`: the watchdog hears it, and an epoch of a followed copy
    /// teaches its worker's speed (the new estimate, to journal). Whether its checkpoint is the
    /// task's latest comes from `checkpointed`.
    mutating func progressed(_ task: String, attempt: Int, epoch: Int, seconds: Double?, at time: Double) -> WorkerSpeed.Estimate? {
        stallWatch.progressed(task, at: time, epochSeconds: seconds)
        guard let (copy, measured) = copies.progressed(task, attempt: attempt, epoch: epoch, claimedSeconds: seconds, at: time),
              let measured else { return nil }
        return speeds.observe(worker: copy.worker, host: copy.host, workload: copy.workload.key, images: copy.workload.imagesPerEpoch, seconds: measured)
    }

    /// A checkpoint of `task` after `epoch` arrived; whether it is the task's latest.
    mutating func checkpointed(_ task: String, epoch: Int) -> Bool { copies.checkpointed(task, epoch: epoch) }

    /// `name`'s `attempt` of `task` was accepted at `time`: the worker's failures reset, and
    /// every other copy of the task lost the race; returns those (worker and attempt).
    mutating func finished(_ task: String, attempt: Int, on name: String, at time: Double) -> [(worker: String, attempt: Int)] {
        release(task, from: name)
        workers[name]?.consecutiveFailures = 0
        finishedAt[name] = time
        copies.ended(task, attempt: attempt)
        stallWatch.forget(task)
        var losers: [(worker: String, attempt: Int)] = []
        for other in holders(of: task).sorted() {
            guard let loser = workers[other]?.running[task] else { continue }
            release(task, from: other)
            copies.supersede(task, attempt: loser)
            losers.append((other, loser))
        }
        return losers
    }

    /// `name`'s `attempt` of `task` failed (an error, or outputs that fail their check); it
    /// counts against the worker. Returns whether another copy still runs (then the task is
    /// not requeued).
    mutating func failed(_ task: String, attempt: Int, on name: String) -> Bool {
        release(task, from: name)
        copies.ended(task, attempt: attempt)
        failedOn[task, default: []].insert(name)
        let another = copyRuns(task)
        if !another { stallWatch.forget(task) }
        return another
    }

    /// `name` no longer runs `attempt` of `task` (its worker was lost or restarted, or the task
    /// stalled there). Returns whether another copy still runs.
    mutating func lost(_ task: String, attempt: Int, on name: String) -> Bool {
        release(task, from: name)
        copies.ended(task, attempt: attempt)
        let another = copyRuns(task)
        if !another { stallWatch.forget(task) }
        return another
    }

    /// One more failed or stalled task of `name` in a row; returns the count when this one
    /// quarantines it (it gets no more work).
    mutating func strike(_ name: String) -> Int? {
        guard var worker = workers[name] else { return nil }
        worker.consecutiveFailures += 1
        defer { workers[name] = worker }
        guard worker.consecutiveFailures >= quarantineAfter, !worker.quarantined else { return nil }
        worker.quarantined = true
        return worker.consecutiveFailures
    }

    /// Tasks without progress for longer than the stall limit at `time`, with their holder
    /// and silence; each is taken from its worker (`lost`) and counts as a failure there.
    mutating func stalled(at time: Double) -> [(task: String, attempt: Int, worker: String, silence: Double)] {
        var found: [(task: String, attempt: Int, worker: String, silence: Double)] = []
        for worker in workers.values {
            // A delivered result waits for its check, not for its worker.
            for (task, attempt) in worker.running where !worker.delivered.contains(task) {
                if let silence = stallWatch.stalled(task, at: time) { found.append((task, attempt, worker.name, silence)) }
            }
        }
        // By worker, then task: sorting the few found, not every worker (this runs every 50 ms).
        found.sort { ($0.worker, $0.task) < ($1.worker, $1.task) }
        for stall in found { failedOn[stall.task, default: []].insert(stall.worker) }
        return found
    }

    /// Whether `time` has come to look at held trainings again (then it is cleared).
    mutating func retryDue(at time: Double) -> Bool {
        guard let at = retryAt, time >= at else { return false }
        retryAt = nil
        return true
    }

    private mutating func release(_ task: String, from name: String) {
        workers[name]?.running[task] = nil
        workers[name]?.delivered.remove(task)
        holders[task]?.remove(name)
        if holders[task]?.isEmpty == true { holders[task] = nil }
    }

    private mutating func reserve(_ task: String, on name: String) {
        workers[name]?.credit -= 1
        workers[name]?.running[task] = 0
        holders[task, default: []].insert(name)
    }

    // MARK: placement

    /// Hands `ready` tasks (in plan order) to workers with capacity at `time`: the worker
    /// holding the fewest tasks (for a training, then the fastest); a task retries on a worker
    /// it has not failed on while there is one. With nothing ready, idle workers may get
    /// backups. Placed tasks hold their slot until `started` or `unplaced`. The free workers
    /// are ordered once per call and workload (`CandidateOrder`), so each task looks at the
    /// front of the order, not at every free worker. At most `starts` tasks start; the
    /// caller places again for the rest.
    mutating func place(_ ready: some Sequence<Ready>, at time: Double, starts: Int = .max) -> [Decision] {
        var decisions: [Decision] = []
        var free = Set(workers.values.filter(mayStart).map(\.name))
        var orders: [String: CandidateOrder] = [:]
        // The fastest speed learned per workload: no worker is faster, so a candidate at more
        // than half of it is never held back, and the others are looked at only below that.
        var fastest: [String: Double] = [:]
        // Per workload, the workers by expected speed, fastest first (made at the first hold
        // check of the dispatch), and the faster workers a hold already waits for.
        var ranked: [String: [RankedWorker]] = [:]
        var promised: Set<String> = []
        // Each ranked worker's outlook on a workload, made once per dispatch.
        var outlooks: [String: [String: WorkerOutlook]] = [:]
        // The faster workers a training could wait for instead of starting on a candidate,
        // per workload and candidate: made at the candidate's first hold check of the
        // dispatch, then only shortened as workers are promised.
        var waitable: [String: [WorkerOutlook]] = [:]
        var anyReady = false
        var started = 0
        for task in ready {
            anyReady = true
            guard !free.isEmpty, started < starts else { break }
            let key = task.workload?.key ?? ""
            if orders[key] == nil { orders[key] = CandidateOrder(task.workload, free.compactMap { candidate($0, for: task.workload) }) }
            let tried = failedOn[task.id] ?? []
            func current(_ candidate: CandidateOrder.Candidate) -> Bool {
                free.contains(candidate.name) && workers[candidate.name]?.busy == candidate.running
            }
            var chosen = orders[key]?.first(current: current) { !tried.contains($0.name) }
            if chosen == nil, !tried.isEmpty, !workers.values.contains(where: { !$0.quarantined && !tried.contains($0.name) }) {
                // Every worker failed it: any free one may try again.
                chosen = orders[key]?.first(current: current) { _ in true }
            }
            guard let name = chosen?.name, let worker = workers[name] else { continue }
            if let workload = task.workload {
                if fastest[workload.key] == nil { fastest[workload.key] = speeds.fastest(workload: workload.key) ?? 0 }
                if let hold = holdsBack(task.id, workload, from: worker, fastest: fastest[workload.key] ?? 0, ranked: &ranked, promised: &promised,
                                        outlooks: &outlooks, waitable: &waitable, at: time) {
                    decisions.append(hold)
                    continue
                }
            }
            reserve(task.id, on: name)
            decisions.append(.start(task: task.id, worker: name))
            started += 1
            if worker.group.flatMap({ hostCaps[$0] }) != nil {
                // A host cap may close the chosen worker's neighbours too.
                free = free.filter { workers[$0].map(mayStart) ?? false }
            } else if workers[name].map(mayStart) != true {
                free.remove(name)
            }
            // A worker still free comes later in each order now (it holds one more task).
            guard free.contains(name) else { continue }
            for (key, order) in orders {
                if let again = candidate(name, for: order.workload) { orders[key]?.insert(again) }
            }
        }
        if !anyReady { decisions += backups(at: time) }
        return decisions
    }

    /// `name` as a candidate in an order for `workload`.
    private func candidate(_ name: String, for workload: TrainingWorkload?) -> CandidateOrder.Candidate? {
        guard let worker = workers[name] else { return nil }
        return CandidateOrder.Candidate(running: worker.busy, speed: workload.flatMap { imagesPerSecond(worker, $0) } ?? 0, name: name)
    }

    /// Whether `worker` may start a task now: not quarantined, with credit and a free slot,
    /// and its host under its `maxTasks` (tasks its workers run: a delivered result's check
    /// runs on the coordinator).
    private func mayStart(_ worker: Worker) -> Bool {
        guard !worker.quarantined && capacity(worker) > 0 else { return false }
        guard let group = worker.group, let cap = hostCaps[group] else { return true }
        return workers.values.filter { $0.group == group }.reduce(0) { $0 + $1.busy } < cap
    }

    private func imagesPerSecond(_ worker: Worker, _ workload: TrainingWorkload) -> Double? {
        speeds.imagesPerSecond(worker: worker.name, host: worker.host, workload: workload.key)
    }

    /// A worker and its expected speed on one workload, for the hold check.
    struct RankedWorker { var name: String, imagesPerSecond: Double }

    /// The hold of a training that should wait for a faster worker instead of starting on
    /// `chosen` (`TrainingPlacement`); nil to start it. A hold looks again in a second. Only
    /// workers more than `slowFactor` times faster than `chosen` can finish sooner by that
    /// factor, so with `fastest` (no worker is faster) below that, nobody is looked at; else
    /// only the front of the dispatch's speed ranking of the workload (`ranked`, made once per
    /// dispatch, not per task, as are the outlooks of its workers). A faster worker that one
    /// hold of this dispatch waits for is `promised`: its next free slot is that training's,
    /// so no other training waits for it (a thousand slower workers would otherwise all wait
    /// for the one fastest). The workers a candidate's trainings could wait for are listed
    /// once per dispatch (`waitable`) and shortened as they are promised: the slowest free
    /// worker of a fleet of alike workers is checked for every ready training, and walking
    /// the ranking again for each (hundreds of faster workers, four lookups by name apiece)
    /// was a third of the socket thread's time at 1,000 workers.
    private mutating func holdsBack(_ id: String, _ workload: TrainingWorkload, from chosen: Worker, fastest: Double,
                                    ranked: inout [String: [RankedWorker]], promised: inout Set<String>,
                                    outlooks: inout [String: [String: WorkerOutlook]], waitable: inout [String: [WorkerOutlook]],
                                    at time: Double) -> Decision? {
        guard let slow = imagesPerSecond(chosen, workload), fastest > TrainingPlacement.slowFactor * slow else { return nil }
        if ranked[workload.key] == nil {
            ranked[workload.key] = workers.values.compactMap { worker -> RankedWorker? in
                guard !worker.quarantined, let speed = imagesPerSecond(worker, workload) else { return nil }
                return RankedWorker(name: worker.name, imagesPerSecond: speed)
            }.sorted { $0.imagesPerSecond > $1.imagesPerSecond }
        }
        let images = workload.imagesLeft(after: copies.checkpointEpoch(id))
        let tried = failedOn[id] ?? []
        // A task that failed somewhere has a list of its own (without those workers).
        let listKey = workload.key + "\u{0}" + chosen.name
        let listed = tried.isEmpty ? waitable[listKey] : nil
        var eligible: [WorkerOutlook] = listed ?? []
        if listed == nil {
            for other in ranked[workload.key] ?? [] {
                guard other.imagesPerSecond > TrainingPlacement.slowFactor * slow else { break }
                guard other.name != chosen.name, !tried.contains(other.name), !promised.contains(other.name) else { continue }
                if let known = outlooks[workload.key]?[other.name] {
                    eligible.append(known)
                } else if let worker = workers[other.name] {
                    let seen = outlook(worker, for: workload, at: time)
                    outlooks[workload.key, default: [:]][other.name] = seen
                    eligible.append(seen)
                }
            }
            if tried.isEmpty { waitable[listKey] = eligible }
        }
        let here = WorkerOutlook(name: chosen.name, imagesPerSecond: slow, freeIn: 0)
        guard let faster = TrainingPlacement.fasterWorker(for: images, candidate: here, others: eligible),
              let fast = faster.imagesPerSecond else { return nil }
        promised.insert(faster.name)
        for key in waitable.keys { waitable[key]?.removeAll { $0.name == faster.name } }
        retryAt = min(retryAt ?? .infinity, time + 1)
        let first = heldNoted.insert(id).inserted
        return .hold(task: id, worker: chosen.name, faster: faster.name, firstTime: first, slowSeconds: images / slow,
                     freeIn: faster.freeIn ?? 0, fastSeconds: images / fast)
    }

    /// `worker` as the placement rule sees it for `workload` at `time`.
    private func outlook(_ worker: Worker, for workload: TrainingWorkload, at time: Double) -> WorkerOutlook {
        let freeIn: Double?
        if worker.busy < worker.slots {
            let justFinished = finishedAt[worker.name].map { time - $0 < Self.readyGrace } ?? false
            freeIn = worker.credit > 0 || justFinished ? 0 : nil
        } else {
            // Its soonest copy to end; an init or prune step (not followed) ends in seconds.
            freeIn = worker.running.filter { !worker.delivered.contains($0.key) }.compactMap { task, attempt -> Double? in
                guard let copy = copies.of(task).first(where: { $0.attempt == attempt }) else { return 0 }
                return speeds.imagesPerSecond(worker: copy.worker, host: copy.host, workload: copy.workload.key)
                    .map { TrainingCopies.secondsLeft(copy, imagesPerSecond: $0, at: time) }
            }.min()
        }
        return WorkerOutlook(name: worker.name, imagesPerSecond: imagesPerSecond(worker, workload), freeIn: freeIn)
    }

    /// Nothing is left to start: each idle worker may take a backup copy of the training
    /// expected to finish last (`BackupTasks`), at most one backup per task.
    private mutating func backups(at time: Double) -> [Decision] {
        let idle = workers.values.filter(mayStart).sorted { $0.name < $1.name }
        guard !idle.isEmpty else { return [] }
        let candidates = Dictionary(grouping: copies.all, by: \.task).compactMap { task, list -> BackupTasks.Running? in
            // A copy whose result is being checked is not backed up: it has finished.
            guard list.count == 1, let copy = list.first, !copies.backedUp.contains(task),
                  workers[copy.worker]?.delivered.contains(task) != true else { return nil }
            let left = speeds.imagesPerSecond(worker: copy.worker, host: copy.host, workload: copy.workload.key)
                .map { TrainingCopies.secondsLeft(copy, imagesPerSecond: $0, at: time) }
            return BackupTasks.Running(task: task, attempt: copy.attempt, workload: copy.workload.key, secondsLeft: left,
                                       imagesForBackup: copy.workload.imagesLeft(after: copies.checkpointEpoch(task)),
                                       excluded: Set([copy.worker]).union(failedOn[task] ?? []))
        }
        var running = BackupTasks.latestFirst(candidates)
        let workloads = Dictionary(copies.all.map { ($0.workload.key, $0.workload) }, uniquingKeysWith: { first, _ in first })
        var decisions: [Decision] = []
        for worker in idle {
            let idleSpeeds = workloads.compactMapValues { imagesPerSecond(worker, $0) }
            guard let choice = BackupTasks.choose(for: worker.name, speeds: idleSpeeds, latestFirst: running) else { continue }
            running.removeAll { $0.task == choice.task }
            reserve(choice.task, on: worker.name)
            decisions.append(.backup(choice, worker: worker.name))
        }
        return decisions
    }
}
