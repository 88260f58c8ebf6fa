import Testing
@testable import Coordinator

/// The scheduler's rules on the pure value, without sockets: credit and slots, held
/// trainings, backup copies, quarantine and stall requeue (docs/protocol.md, "The coordinator").
@Suite struct SchedulerTests {
    /// Quick-preset trainings: 6,000 images per epoch, 2 epochs.
    static let workload = TrainingWorkload(Preset.quick.training)

    static func starts(_ decisions: [Scheduler.Decision]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: decisions.compactMap { decision -> (String, String)? in
            if case .start(let task, let worker) = decision { (task, worker) } else { nil }
        })
    }

    static func ready(_ count: Int, training: Bool = false) -> [Scheduler.Ready] {
        (0..<count).map { Scheduler.Ready(id: "t\($0)", workload: training ? workload : nil) }
    }

    /// A scheduler whose workers have started and reported one epoch of a training each, at `speeds` images/s.
    static func learned(_ speeds: [String: Double], slots: Int = 1) -> Scheduler {
        var scheduler = Scheduler(quarantineAfter: 3, hostCaps: [:])
        for (name, speed) in speeds.sorted(by: { $0.key < $1.key }) {
            scheduler.joined(name, host: "h-\(name)", group: nil, slots: slots, running: [:])
            scheduler.started("warm-\(name)", attempt: 1, on: name, workload: workload, at: 0)
            _ = scheduler.progressed("warm-\(name)", attempt: 1, epoch: 1, seconds: 6000 / speed, at: 6000 / speed)
            _ = scheduler.finished("warm-\(name)", attempt: 1, on: name, at: 1000)
        }
        return scheduler
    }

    @Test func aWorkerNeverGetsMoreThanItsSlotsWhateverCreditItAsksFor() {
        var scheduler = Scheduler(quarantineAfter: 3, hostCaps: [:])
        scheduler.joined("a", host: "h", group: nil, slots: 2, running: [:])
        scheduler.granted("a", credit: 5)
        let first = scheduler.place(Self.ready(5), at: 0)
        #expect(Self.starts(first).count == 2)
        for (task, worker) in Self.starts(first) { scheduler.started(task, attempt: 1, on: worker, workload: nil, at: 0) }
        // Credit beyond the free slots gives nothing more.
        scheduler.granted("a", credit: 5)
        let outcome1 = scheduler.place(Self.ready(5).filter { Self.starts(first)[$0.id] == nil }, at: 0)
        #expect(Self.starts(outcome1).isEmpty)
        // A worker with no credit gets nothing.
        scheduler.joined("b", host: "h", group: nil, slots: 4, running: [:])
        let outcome2 = scheduler.place([Scheduler.Ready(id: "x", workload: nil)], at: 0)
        #expect(Self.starts(outcome2).isEmpty)
        // A finished task frees its slot once the worker asks again.
        _ = scheduler.finished("t0", attempt: 1, on: "a", at: 1)
        scheduler.granted("a", credit: 1)
        let outcome3 = scheduler.place([Scheduler.Ready(id: "y", workload: nil)], at: 1)
        #expect(Self.starts(outcome3) == ["y": "a"])
    }

    @Test func aDispatchStartsAtMostItsBoundAndTheNextPlacesTheRest() {
        var scheduler = Scheduler(quarantineAfter: 3, hostCaps: [:])
        for index in 0..<5 {
            scheduler.joined("w\(index)", host: "h", group: nil, slots: 1, running: [:])
            scheduler.granted("w\(index)", credit: 1)
        }
        let first = Self.starts(scheduler.place(Self.ready(10), at: 0, starts: 2))
        // The first tasks in plan order, on two workers.
        #expect(Set(first.keys) == ["t0", "t1"] && Set(first.values).count == 2)
        let second = Self.starts(scheduler.place(Self.ready(10).filter { first[$0.id] == nil }, at: 0, starts: 2))
        #expect(Set(second.keys) == ["t2", "t3"] && Set(second.values).isDisjoint(with: first.values))
        // The fifth worker takes the next; the bound is no floor.
        let third = Self.starts(scheduler.place(Self.ready(10).filter { first[$0.id] == nil && second[$0.id] == nil }, at: 0, starts: 2))
        #expect(Set(third.keys) == ["t4"] && !first.values.contains(third["t4"] ?? "") && !second.values.contains(third["t4"] ?? ""))
    }

    @Test func aHostCapLimitsItsWorkersTogether() {
        var scheduler = Scheduler(quarantineAfter: 3, hostCaps: ["box": 1])
        for name in ["a", "b"] {
            scheduler.joined(name, host: "box", group: "box", slots: 1, running: [:])
            scheduler.granted(name, credit: 1)
        }
        let outcome4 = scheduler.place(Self.ready(2), at: 0)
        #expect(Self.starts(outcome4).count == 1)
    }

    @Test func aTrainingWaitsForAMuchFasterWorkerAboutToBeFree() {
        // "slow" trains 100 images/s (120 s for the task), "fast" 1,000 (12 s) and has just finished.
        var scheduler = Self.learned(["fast": 1000, "slow": 100])
        scheduler.granted("slow", credit: 1)
        let decisions = scheduler.place([Scheduler.Ready(id: "train", workload: Self.workload)], at: 1001)
        guard case .hold(let task, let worker, let faster, let firstTime, _, _, _) = decisions.first else {
            Issue.record("expected a hold, got \(decisions)")
            return
        }
        #expect((task, worker, faster, firstTime) == ("train", "slow", "fast", true))
        #expect(scheduler.retryAt == 1002)
        // Noted once per task.
        guard case .hold(_, _, _, let again, _, _, _) = scheduler.place([Scheduler.Ready(id: "train", workload: Self.workload)], at: 1001).first else {
            Issue.record("expected a second hold")
            return
        }
        #expect(!again)
        // A merely somewhat slower worker takes it at once; so does any worker for an init or prune step.
        var close = Self.learned(["fast": 1000, "slow": 700])
        close.granted("slow", credit: 1)
        let outcome5 = close.place([Scheduler.Ready(id: "train", workload: Self.workload)], at: 1001)
        #expect(Self.starts(outcome5) == ["train": "slow"])
        let outcome6 = scheduler.place([Scheduler.Ready(id: "prune", workload: nil)], at: 1001)
        #expect(Self.starts(outcome6) == ["prune": "slow"])
    }

    @Test func oneFasterWorkerIsWaitedForByOneTrainingPerDispatch() {
        // Three slow workers could each hold a training for "fast", which can take only one.
        var scheduler = Self.learned(["fast": 1000, "slow1": 100, "slow2": 100, "slow3": 100])
        for name in ["slow1", "slow2", "slow3"] { scheduler.granted(name, credit: 1) }
        let decisions = scheduler.place(Self.ready(3, training: true), at: 1001)
        let holds = decisions.compactMap { decision -> String? in
            if case .hold(let task, _, let faster, _, _, _, _) = decision { "\(task) for \(faster)" } else { nil }
        }
        #expect(holds == ["t0 for fast"])
        #expect(Self.starts(decisions) == ["t1": "slow1", "t2": "slow2"])
    }

    @Test func anIdleFastWorkerBacksUpTheTrainingExpectedToFinishLast() {
        var scheduler = Self.learned(["fast": 1000, "slow": 100])
        scheduler.granted("slow", credit: 1)
        scheduler.started("long", attempt: 1, on: "slow", workload: Self.workload, at: 1000)
        scheduler.granted("fast", credit: 1)
        // Ready tasks first: no backup while there is work to start.
        let outcome7 = scheduler.place(Self.ready(1), at: 1001)
        #expect(Self.starts(outcome7) == ["t0": "fast"])
        _ = scheduler.finished("t0", attempt: 1, on: "fast", at: 1002)
        scheduler.granted("fast", credit: 1)
        let decisions = scheduler.place([], at: 1002)
        guard case .backup(let choice, let worker) = decisions.first else {
            Issue.record("expected a backup, got \(decisions)")
            return
        }
        #expect(worker == "fast" && choice.task == "long" && choice.original == 1)
        scheduler.started("long", attempt: 2, on: "fast", workload: Self.workload, at: 1002, backupOf: 1)
        // The first copy to finish wins; the other lost the race.
        let losers = scheduler.finished("long", attempt: 2, on: "fast", at: 1020)
        #expect(losers.map(\.worker) == ["slow"] && losers.map(\.attempt) == [1])
        #expect(scheduler.copies.isSuperseded("long", attempt: 1, on: "slow"))
        #expect(!scheduler.copyRuns("long"))
        // At most one backup per task.
        scheduler.granted("fast", credit: 1)
        let outcome8 = scheduler.place([], at: 1021)
        #expect(outcome8.isEmpty)
    }

    @Test func failuresInARowQuarantineAWorkerAndTheTaskRetriesElsewhere() {
        var scheduler = Scheduler(quarantineAfter: 2, hostCaps: [:])
        for name in ["a", "b"] { scheduler.joined(name, host: "h", group: nil, slots: 1, running: [:]) }
        scheduler.granted("a", credit: 1)
        let outcome9 = scheduler.place(Self.ready(1), at: 0)
        #expect(Self.starts(outcome9) == ["t0": "a"])
        scheduler.started("t0", attempt: 1, on: "a", workload: nil, at: 0)
        let outcome10 = scheduler.failed("t0", attempt: 1, on: "a")
        #expect(!outcome10)
        let outcome11 = scheduler.strike("a")
        #expect(outcome11 == nil)
        // The task does not go back to "a" while "b" has not tried it: it waits for "b".
        scheduler.granted("a", credit: 1)
        let outcome12 = scheduler.place(Self.ready(1), at: 1)
        #expect(Self.starts(outcome12).isEmpty)
        scheduler.granted("b", credit: 1)
        let outcome13 = scheduler.place(Self.ready(1), at: 1)
        #expect(Self.starts(outcome13) == ["t0": "b"])
        // A second failure in a row quarantines "a": it gets nothing more.
        let outcome14 = scheduler.strike("a")
        #expect(outcome14 == 2)
        #expect(scheduler.workers["a"]?.quarantined == true)
        let outcome15 = scheduler.place([Scheduler.Ready(id: "other", workload: nil)], at: 2)
        #expect(Self.starts(outcome15).isEmpty)
    }

    @Test func aTaskWithoutProgressPastTheStallLimitIsTakenFromItsWorker() {
        var scheduler = Scheduler(quarantineAfter: 3, hostCaps: [:], stallSeconds: 30)
        scheduler.joined("a", host: "h", group: nil, slots: 1, running: [:])
        scheduler.started("t0", attempt: 1, on: "a", workload: Self.workload, at: 0)
        _ = scheduler.progressed("t0", attempt: 1, epoch: 1, seconds: 20, at: 20)
        let outcome16 = scheduler.stalled(at: 45)
        #expect(outcome16.isEmpty)
        let stalls = scheduler.stalled(at: 51)
        #expect(stalls.map(\.task) == ["t0"] && stalls.map(\.worker) == ["a"] && stalls.map(\.attempt) == [1])
        // Requeued: no copy runs, and it counts against the worker (it retries elsewhere first).
        let outcome17 = scheduler.lost("t0", attempt: 1, on: "a")
        #expect(!outcome17)
        #expect(scheduler.failedOn["t0"] == ["a"])
        let outcome18 = scheduler.stalled(at: 100)
        #expect(outcome18.isEmpty)
    }

    @Test func freeWorkersAreTakenFewestTasksFirstThenFastestForATrainingThenByName() {
        // Speeds 250, 200 and 150 images/s (none twice another: nothing is held back).
        var scheduler = Self.learned(["a": 150, "b": 250, "c": 200], slots: 2)
        for name in ["a", "b", "c"] { scheduler.granted(name, credit: 2) }
        let trainings = (0..<6).map { Scheduler.Ready(id: "train\($0)", workload: Self.workload) }
        let placed = scheduler.place(trainings, at: 1001).compactMap { decision -> String? in
            if case .start(_, let worker) = decision { worker } else { nil }
        }
        // Each worker's second task comes only after every worker has one.
        #expect(placed == ["b", "c", "a", "b", "c", "a"])
        var fresh = Scheduler(quarantineAfter: 3, hostCaps: [:])
        for name in ["z", "y", "x"] {
            fresh.joined(name, host: "h", group: nil, slots: 1, running: [:])
            fresh.granted(name, credit: 1)
        }
        #expect(Self.starts(fresh.place(Self.ready(2), at: 0)) == ["t0": "x", "t1": "y"])
        // A task failed on x waits for y, which has not tried it, rather than go back to x.
        var retry = Scheduler(quarantineAfter: 3, hostCaps: [:])
        for name in ["x", "y"] {
            retry.joined(name, host: "h", group: nil, slots: 1, running: [:])
            retry.granted(name, credit: 1)
        }
        retry.started("t2", attempt: 1, on: "x", workload: nil, at: 0)
        retry.started("busy", attempt: 1, on: "y", workload: nil, at: 0)
        _ = retry.failed("t2", attempt: 1, on: "x")
        #expect(Self.starts(retry.place([Scheduler.Ready(id: "t2", workload: nil)], at: 1)).isEmpty)
        _ = retry.finished("busy", attempt: 1, on: "y", at: 2)
        #expect(Self.starts(retry.place([Scheduler.Ready(id: "t2", workload: nil)], at: 2)) == ["t2": "y"])
    }

    // MARK: a result frees its slot before its verdict (docs/protocol.md, "A result frees its slot")

    /// A one-slot worker that has started `t0` (attempt 1) and asked for its next task.
    static func runningOne(quarantineAfter: Int = 3, hostCaps: [String: Int] = [:], group: String? = nil) -> Scheduler {
        var scheduler = Scheduler(quarantineAfter: quarantineAfter, hostCaps: hostCaps)
        scheduler.joined("a", host: "h", group: group, slots: 1, running: [:])
        scheduler.started("t0", attempt: 1, on: "a", workload: nil, at: 0)
        scheduler.granted("a", credit: 1)
        return scheduler
    }

    @Test func aDeliveredResultFreesItsSlotAndItsTaskStaysHeldUntilTheVerdict() {
        var scheduler = Self.runningOne()
        let next = [Scheduler.Ready(id: "t1", workload: nil)]
        #expect(Self.starts(scheduler.place(next, at: 1)).isEmpty, "a one-slot worker running a task got another")
        // Another attempt's result, or a result of a task it does not hold, frees nothing.
        scheduler.delivered("t0", attempt: 2, by: "a", at: 1)
        scheduler.delivered("elsewhere", attempt: 1, by: "a", at: 1)
        #expect(Self.starts(scheduler.place(next, at: 1)).isEmpty)
        // Its result is here and being checked: its next task goes out at once, and t0 is still its own.
        scheduler.delivered("t0", attempt: 1, by: "a", at: 1)
        #expect(Self.starts(scheduler.place(next, at: 1)) == ["t1": "a"])
        scheduler.started("t1", attempt: 1, on: "a", workload: nil, at: 1)
        #expect(scheduler.holds("a", "t0", attempt: 1) && scheduler.holds("a", "t1", attempt: 1))
        // The verdict accepts t0; t1 fills the slot, and asking again gets nothing until t1's result.
        let losers = scheduler.finished("t0", attempt: 1, on: "a", at: 2)
        #expect(losers.isEmpty)
        scheduler.granted("a", credit: 1)
        #expect(Self.starts(scheduler.place([Scheduler.Ready(id: "t2", workload: nil)], at: 2)).isEmpty)
        #expect(scheduler.workers["a"]?.delivered.isEmpty == true && scheduler.workers["a"]?.busy == 1)
    }

    @Test func aRefusedDeliveredResultRequeuesItsTaskAwayFromItsWorker() {
        var scheduler = Self.runningOne()
        scheduler.joined("b", host: "h", group: nil, slots: 1, running: [:])
        scheduler.delivered("t0", attempt: 1, by: "a", at: 1)
        #expect(Self.starts(scheduler.place([Scheduler.Ready(id: "t1", workload: nil)], at: 1)) == ["t1": "a"])
        scheduler.started("t1", attempt: 1, on: "a", workload: nil, at: 1)
        // Its outputs fail their check: no other copy runs (the task is requeued), it counts
        // against "a", and the retry goes to "b".
        let another = scheduler.failed("t0", attempt: 1, on: "a")
        let quarantined = scheduler.strike("a")
        #expect(!another && quarantined == nil && scheduler.workers["a"]?.consecutiveFailures == 1)
        #expect(!scheduler.holds("a", "t0", attempt: 1) && scheduler.holds("a", "t1", attempt: 1))
        scheduler.granted("a", credit: 1)
        scheduler.granted("b", credit: 1)
        #expect(Self.starts(scheduler.place([Scheduler.Ready(id: "t0", workload: nil)], at: 2)) == ["t0": "b"])
    }

    @Test func resultsAwaitingTheirVerdictsFreeAtMostTheWorkersSlots() {
        var scheduler = Self.runningOne()
        scheduler.delivered("t0", attempt: 1, by: "a", at: 1)
        #expect(Self.starts(scheduler.place([Scheduler.Ready(id: "t1", workload: nil)], at: 1)) == ["t1": "a"])
        scheduler.started("t1", attempt: 1, on: "a", workload: nil, at: 1)
        // A second result while the first is still checked: one slot frees one result, so the
        // third task waits for a verdict (results being checked stay bounded by the slots).
        scheduler.delivered("t1", attempt: 1, by: "a", at: 2)
        scheduler.granted("a", credit: 1)
        let third = [Scheduler.Ready(id: "t2", workload: nil)]
        #expect(Self.starts(scheduler.place(third, at: 2)).isEmpty)
        _ = scheduler.finished("t0", attempt: 1, on: "a", at: 3)
        #expect(Self.starts(scheduler.place(third, at: 3)) == ["t2": "a"])
    }

    @Test func aWorkerWhoseVerdictsCouldQuarantineItWaitsForThem() {
        var scheduler = Self.runningOne(quarantineAfter: 2)
        let quarantined = scheduler.strike("a")
        #expect(quarantined == nil)
        // One failure in a row, one more would quarantine it: its next task waits for the verdict.
        scheduler.delivered("t0", attempt: 1, by: "a", at: 1)
        let next = [Scheduler.Ready(id: "t1", workload: nil)]
        #expect(Self.starts(scheduler.place(next, at: 1)).isEmpty)
        // Accepted: the streak ends and the task goes out.
        _ = scheduler.finished("t0", attempt: 1, on: "a", at: 2)
        #expect(Self.starts(scheduler.place(next, at: 2)) == ["t1": "a"])
    }

    @Test func aDeliveredResultFreesItsHostsCap() {
        var scheduler = Self.runningOne(hostCaps: ["box": 1], group: "box")
        scheduler.joined("b", host: "h", group: "box", slots: 1, running: [:])
        scheduler.granted("b", credit: 1)
        let next = [Scheduler.Ready(id: "t1", workload: nil)]
        #expect(Self.starts(scheduler.place(next, at: 1)).isEmpty, "a host capped at 1 ran two tasks")
        scheduler.delivered("t0", attempt: 1, by: "a", at: 1)
        #expect(Self.starts(scheduler.place(next, at: 1)).count == 1)
    }

    @Test func aDeliveredTrainingIsNeitherBackedUpNorStalled() {
        var scheduler = Self.learned(["fast": 1000, "slow": 100])
        scheduler.started("long", attempt: 1, on: "slow", workload: Self.workload, at: 1000)
        // "slow" delivered at once (faster than its speed says): the check runs; no idle
        // worker backs up a training that has finished.
        scheduler.delivered("long", attempt: 1, by: "slow", at: 1001)
        scheduler.granted("fast", credit: 1)
        let backups = scheduler.place([], at: 1001)
        #expect(backups.isEmpty, "a training whose result is being checked was backed up: \(backups)")
        // Nor is a check of hours a stall of its worker.
        var watched = Self.runningOne()
        watched.delivered("t0", attempt: 1, by: "a", at: 1)
        let stalls = watched.stalled(at: 100_000)
        #expect(stalls.isEmpty)
    }

    /// Ordered once per dispatch, the running trainings give each idle worker the one
    /// expected to finish last that it may take (the first of equals), as `choose` over the
    /// unordered list does; after a backup of it, the next idle worker looks at the rest.
    @Test func idleWorkersTakeTheLatestTrainingTheyMayFromOneOrdering() {
        func running(_ task: String, left: Double?, on worker: String) -> BackupTasks.Running {
            BackupTasks.Running(task: task, attempt: 1, workload: "w", secondsLeft: left, imagesForBackup: 100, excluded: [worker])
        }
        let list = [running("a", left: 20, on: "x"), running("b", left: 40, on: "fast"), running("c", left: nil, on: "x"),
                    running("d", left: 40, on: "x"), running("e", left: 40, on: "y")]
        let speeds = ["w": 100.0]
        let ordered = BackupTasks.latestFirst(list)
        #expect(ordered.map(\.task) == ["b", "d", "e", "a"], "longest first, ties in their order, unknown times left out")
        for idle in ["fast", "x", "y", "z"] {
            #expect(BackupTasks.choose(for: idle, speeds: speeds, latestFirst: ordered) == BackupTasks.choose(for: idle, speeds: speeds, running: list))
        }
        #expect(BackupTasks.choose(for: "fast", speeds: speeds, latestFirst: ordered)?.task == "d", "its own training skipped, the first of the equals taken")
        #expect(BackupTasks.choose(for: "x", speeds: speeds, latestFirst: ordered)?.task == "b")
        #expect(BackupTasks.choose(for: "x", speeds: speeds, latestFirst: ordered.filter { $0.task != "b" })?.task == "e")
        #expect(BackupTasks.choose(for: "x", speeds: speeds, latestFirst: [running("a", left: 1, on: "y")]) == nil, "1 s left: a backup of 1 s is no gain")
    }
}
