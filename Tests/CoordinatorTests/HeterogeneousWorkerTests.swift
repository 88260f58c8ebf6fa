import Foundation
import GRDB
import Model
import TaskRuntime
import Testing
@testable import Coordinator

/// The scheduling rules for workers of different speeds, fed with synthetic speeds and times
/// (no sockets): learned speeds, trainings held back from slow workers, the choice of backup
/// copies, and how the journal keeps both copies of a task.
@Suite struct HeterogeneousWorkerTests {
    static let workload = "synthetic width 4 16px batch 32"

    @Test func speedsAreMovingAveragesWithTheHostsMeanForANewWorker() {
        var speeds = WorkerSpeed()
        #expect(speeds.imagesPerSecond(worker: "a", host: "h1", workload: Self.workload) == nil)
        speeds.observe(worker: "a", host: "h1", workload: Self.workload, images: 1000, seconds: 10)
        #expect(speeds.imagesPerSecond(worker: "a", host: "h1", workload: Self.workload) == 100)
        speeds.observe(worker: "a", host: "h1", workload: Self.workload, images: 1000, seconds: 5)
        #expect(speeds.imagesPerSecond(worker: "a", host: "h1", workload: Self.workload) == 100 + WorkerSpeed.smoothing * 100)
        speeds.observe(worker: "b", host: "h2", workload: Self.workload, images: 1000, seconds: 100)
        // A newcomer on h1 borrows h1's speed; one on a third host, everyone's mean.
        #expect(speeds.imagesPerSecond(worker: "c", host: "h1", workload: Self.workload) == 150)
        #expect(speeds.imagesPerSecond(worker: "d", host: "h3", workload: Self.workload) == 80, "the mean of 150 and 10")
        #expect(speeds.imagesPerSecond(worker: "a", host: "h1", workload: "cifar10 width 64 32px batch 128") == nil)
        #expect(speeds.observe(worker: "a", host: "h1", workload: Self.workload, images: 1000, seconds: 0) == nil)
        #expect(speeds.observe(worker: "a", host: "h1", workload: Self.workload, images: 1000, seconds: -.infinity) == nil)
        #expect(speeds.all.map(\.worker) == ["a", "b"])
    }

    @Test func aTrainingWaitsForAFasterWorkerAboutToBeFreeNotForOneBusyForLong() {
        let slow = WorkerOutlook(name: "slow", imagesPerSecond: 100, freeIn: 0)
        // 1,000 images: 10 s on the slow worker; 1 s on the fast one once free.
        let soon = WorkerOutlook(name: "fast", imagesPerSecond: 1000, freeIn: 2)
        #expect(TrainingPlacement.fasterWorker(for: 1000, candidate: slow, others: [soon])?.name == "fast")
        let late = WorkerOutlook(name: "fast", imagesPerSecond: 1000, freeIn: 8)
        #expect(TrainingPlacement.fasterWorker(for: 1000, candidate: slow, others: [late]) == nil, "9 s there is not twice as soon as 10 s here")
        let unknownFree = WorkerOutlook(name: "fast", imagesPerSecond: 1000, freeIn: nil)
        #expect(TrainingPlacement.fasterWorker(for: 1000, candidate: slow, others: [unknownFree]) == nil)
        let unknownSpeed = WorkerOutlook(name: "slow", imagesPerSecond: nil, freeIn: 0)
        #expect(TrainingPlacement.fasterWorker(for: 1000, candidate: unknownSpeed, others: [soon]) == nil)
        let alike = WorkerOutlook(name: "peer", imagesPerSecond: 150, freeIn: 0)
        #expect(TrainingPlacement.fasterWorker(for: 1000, candidate: slow, others: [alike]) == nil, "1.5× faster is within the factor")
        let fastest = WorkerOutlook(name: "fastest", imagesPerSecond: 2000, freeIn: 0)
        #expect(TrainingPlacement.fasterWorker(for: 1000, candidate: slow, others: [soon, fastest])?.name == "fastest")
        #expect(TrainingPlacement.fasterWorker(for: 1000, candidate: fastest, others: [slow, soon]) == nil)
    }

    @Test func aBackupCopiesTheTrainingExpectedToFinishLastWhenTheIdleWorkerIsClearlyFaster() {
        func running(_ task: String, left: Double?, images: Double = 1000, on worker: String = "slow") -> BackupTasks.Running {
            BackupTasks.Running(task: task, attempt: 1, workload: Self.workload, secondsLeft: left, imagesForBackup: images, excluded: [worker])
        }
        let speeds = [Self.workload: 200.0]
        // The idle worker needs 5 s for 1,000 images.
        let choice = BackupTasks.choose(for: "fast", speeds: speeds, running: [running("a", left: 12), running("b", left: 30), running("c", left: nil)])
        #expect(choice == BackupTasks.Choice(task: "b", original: 1, originalSeconds: 30, backupSeconds: 5))
        #expect(BackupTasks.choose(for: "fast", speeds: speeds, running: [running("a", left: 9)]) == nil, "5 s is not twice as soon as 9 s")
        #expect(BackupTasks.choose(for: "fast", speeds: speeds, running: [running("a", left: 9), running("b", left: 30, images: 8000)]) == nil,
                "the latest task is the only candidate, and it is not sooner here")
        #expect(BackupTasks.choose(for: "slow", speeds: speeds, running: [running("a", left: 30)]) == nil, "its own task")
        #expect(BackupTasks.choose(for: "fast", speeds: [:], running: [running("a", left: 30)]) == nil, "unknown speed")
        #expect(BackupTasks.choose(for: "fast", speeds: speeds, running: [running("a", left: nil)]) == nil)
    }

    @Test func copiesMeasureEpochsOnTheCoordinatorsClockAndKeepTheLatestCheckpoint() throws {
        let config = Preset.smoke.training
        let workload = TrainingWorkload(config)
        #expect(workload.imagesPerEpoch == 256 && workload.epochs == 2)
        #expect(TrainingWorkload(Preset.quick.training).imagesPerEpoch == 6000)
        var copies = TrainingCopies()
        copies.started("t", attempt: 1, worker: "slow", host: "h", workload: workload, fromEpoch: 0, at: 100)
        // The first epoch's claim stands (the interval includes fetching inputs), capped at the interval.
        let first = copies.progressed("t", attempt: 1, epoch: 1, claimedSeconds: 4, at: 110)
        #expect(first?.seconds == 4)
        // Later epochs are timed by the coordinator, whatever the worker claims.
        let second = copies.progressed("t", attempt: 1, epoch: 2, claimedSeconds: 0.001, at: 118)
        #expect(second?.seconds == 8)
        let repeated = copies.progressed("t", attempt: 1, epoch: 2, claimedSeconds: 1, at: 120)
        #expect(repeated == nil, "an epoch that did not advance")
        let newer = copies.checkpointed("t", epoch: 2), older = copies.checkpointed("t", epoch: 1)
        #expect(newer && !older, "an older checkpoint replaced a newer one")
        copies.started("t", attempt: 2, worker: "fast", host: "h", workload: workload, fromEpoch: 0, at: 120, backupOf: 1)
        #expect(copies.of("t").first { $0.attempt == 2 }?.epochsDone == 2, "a backup resumes from the latest checkpoint")
        #expect(copies.backedUp == ["t"])
        copies.supersede("t", attempt: 1)
        #expect(copies.isSuperseded("t", attempt: 1, on: "slow") && !copies.isSuperseded("t", attempt: 2, on: "fast"))
        #expect(!copies.isSuperseded("t", attempt: 1, on: "forger"), "a peer that never held the attempt speaks for it")
        #expect(copies.of("t").map(\.attempt) == [2])
        let copy = try #require(copies.of("t").first)
        var running = copy
        running.epochsDone = 0
        running.lastHeard = 10
        #expect(TrainingCopies.secondsLeft(running, imagesPerSecond: 64, at: 12) == 6, "512 images at 64/s, 2 s of it spent")
    }

    /// A fresh journal holding a one-training smoke sweep named `name`, and that task's id.
    static func journalWithOneTask(_ name: String) throws -> (directory: URL, journal: Journal, task: String) {
        let directory = try JournalTests.directory()
        let journal = try Journal(directory: directory)
        let sweep = try JSONDecoder().decode(SweepSpec.self, from: Data(#"{"name":"\#(name)","preset":"smoke","seeds":[1],"dense":true}"#.utf8))
        let plan = try SweepPlan(sweep)
        try journal.record(sweep: sweep, plan: plan, extend: false)
        return (directory, journal, try #require(plan.tasks.first).id)
    }

    @Test func theJournalKeepsBothCopiesAndSupersedesTheLoser() throws {
        let (directory, journal, task) = try Self.journalWithOneTask("copies")
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(throws: SweepError.self) { try journal.startBackup(task, worker: "fast", of: 1) }
        let original = try journal.start(task, worker: "slow")
        let backup = try journal.startBackup(task, worker: "fast", of: original)
        let state = try journal.task(task)?.state
        #expect(backup == original + 1 && state == .running)
        let won = try journal.complete(task, attempt: backup, outputs: [:], record: "{}")
        let lostToo = try journal.complete(task, attempt: original, outputs: [:], record: "{}")
        #expect(won && !lostToo, "the loser's result was accepted too")
        let attempts = try journal.attemptRecords(task)
        #expect(attempts.map(\.outcome) == ["superseded", "done"])
        #expect(attempts.map(\.backupOf) == [nil, original])
        #expect(try journal.backedUpTasks() == [task])
        try journal.noteSpeed(worker: "fast", host: "h", workload: Self.workload, imagesPerSecond: 300)
        try journal.noteSpeed(worker: "fast", host: "h", workload: Self.workload, imagesPerSecond: 310)
        #expect(try journal.speeds() == [Journal.Speed(worker: "fast", host: "h", workload: Self.workload, imagesPerSecond: 310)])
        let lines = try CopiesStatus.lines(journal).joined(separator: "\n")
        #expect(lines.contains("attempt \(backup) on fast, backup of attempt \(original): done"), "\(lines)")
        #expect(lines.contains("attempt \(original) on slow: superseded"), "\(lines)")
        #expect(lines.contains("fast on h: 310.0 images/s"), "\(lines)")
    }

    @Test func aRestartedCoordinatorAdoptsEachCopyUnderItsOwnAttempt() throws {
        let (directory, journal, task) = try Self.journalWithOneTask("adopt")
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = try journal.start(task, worker: "slow")
        _ = try journal.startBackup(task, worker: "fast", of: original)
        try journal.requeueInterrupted()
        // The original's worker reconnects first; it reports under its own attempt number.
        #expect(try journal.adopt(task, worker: "slow") == original)
        #expect(try journal.adopt(task, worker: "fast") == nil, "a task adopted twice")
    }

    @Test func aJournalFromBeforeBackupsOpensAndKeepsItsAttempts() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The schema as version 1 left it, with one finished attempt.
        let old = try DatabaseQueue(path: directory.appendingPathComponent("journal.sqlite").path)
        try old.write { db in
            try db.execute(sql: """
                CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                INSERT INTO grdb_migrations VALUES ('v1');
                CREATE TABLE sweep (id INTEGER PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL);
                CREATE TABLE task (id TEXT PRIMARY KEY, spec TEXT NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL,
                                   attempts INTEGER NOT NULL, failures INTEGER NOT NULL, outputs TEXT, checkpoint TEXT);
                CREATE TABLE attempt (id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL REFERENCES task, number INTEGER NOT NULL,
                                      worker TEXT NOT NULL, started DOUBLE NOT NULL, ended DOUBLE, outcome TEXT);
                CREATE TABLE result (task TEXT PRIMARY KEY REFERENCES task, record TEXT NOT NULL);
                CREATE TABLE event (seq INTEGER PRIMARY KEY AUTOINCREMENT, time DOUBLE NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
                INSERT INTO task VALUES ('t', '{}', 0, 'done', 1, 0, '{}', NULL);
                INSERT INTO attempt (task, number, worker, started, ended, outcome) VALUES ('t', 1, 'w1', 1, 2, 'done');
                """)
        }
        try old.close()
        let journal = try Journal(directory: directory)
        #expect(try journal.attemptRecords("t") == [Journal.AttemptRecord(task: "t", number: 1, worker: "w1", backupOf: nil, outcome: "done")])
        #expect(try journal.backedUpTasks().isEmpty)
        #expect(try journal.speeds().isEmpty)
        #expect(try CopiesStatus.lines(journal).isEmpty)
    }
}
