import Foundation
import Protocol
import TaskRuntime

/// The clock and dispatch: heartbeats, lost workers, stalled tasks, the `Scheduler`'s
/// decisions carried out, the live status line, the end of the sweep, and the commit of the
/// turn's journal changes.
extension SweepServer {
    /// Runs at the end of every loop turn (and at least every tick of the loop).
    public func tick() {
        let time = now()
        do { try journal.beginTurn() } catch { log.error("cannot open the journal's transaction: \(error)") }
        files.drain(until: DispatchTime.now().uptimeNanoseconds + UInt64(Self.verdictSeconds * 1e9))
        if time - lastSweep >= Self.sweepEvery {
            lastSweep = time
            sweepSessions(at: time)
        }
        liveCount.with { $0 = sessions.count }
        if scheduler.retryDue(at: time) || adoptionUntil.map({ time >= $0 }) == true { needsDispatch = true }
        if heldForUploads && !artifacts.isFull {
            heldForUploads = false
            needsDispatch = true
        }
        if needsDispatch {
            needsDispatch = false
            do { try dispatch() } catch { log.error("cannot dispatch: \(error)") }
        }
        if Date().timeIntervalSince(lastStatus) >= options.statusEvery {
            lastStatus = Date()
            log.info("\(statusLine())")
        }
        tellCounts()
        do { try journal.endTurn() } catch { log.error("cannot commit the journal's transaction: \(error)") }
    }

    /// Seconds between two looks at every session and running task (`sweepSessions`).
    static let sweepEvery = 0.05

    /// Seconds of a turn spent taking the file lanes' answers (verdicts, stored uploads) at
    /// most; the rest wait for the next turn, which follows at once.
    static let verdictSeconds = 0.005

    /// Tasks started per turn at most (each is a journal write, an encoded message and a log
    /// line: 226 at once, when a fleet joined, held a turn for 19 ms of CPU). A dispatch that
    /// reaches it runs again at the next turn, at once.
    static let startsPerTurn = 32

    /// Every session's liveness and every running task's progress looked at: lost workers
    /// and stalled tasks taken back, heartbeats owed sent. A turn handles a few hundred
    /// messages at most, so this runs at most every `sweepEvery` seconds, not every turn.
    private func sweepSessions(at time: Double) {
        let dead = sessions.all.filter { $0.liveness.isDead(at: time) }.sorted { $0.name < $1.name }
        for session in dead {
            sessions.remove(session.peer)
            artifacts.dropAll(from: session.peer)
            let running = scheduler.left(session.name)
            let silence = String(format: "%.1f", time - session.liveness.lastHeard)
            try? journal.note("lost", ["worker": session.name, "silentSeconds": silence])
            options.monitor?.workerLost(session.name, at: time)
            if running.isEmpty { log.warning("worker \(session.name) lost (silent for \(silence) s)") }
            for (task, attempt) in running.sorted(by: { $0.key < $1.key }) {
                try? lose(task, attempt: attempt, worker: session.name, why: "silent for \(silence) s")
            }
        }
        for session in sessions.all where session.liveness.heartbeatDue(at: time) { send(session.peer, .heartbeat) }
        for stalled in scheduler.stalled(at: time) {
            guard let peer = sessions.peer(named: stalled.worker) else { continue }
            do { try stall(stalled.task, attempt: stalled.attempt, peer: peer, worker: stalled.worker, silence: stalled.silence) } catch {
                log.error("cannot take stalled \(stalled.task.prefix(12)) from \(stalled.worker): \(error)")
            }
        }
        reports.flushDue(now: time)
    }

    private func dispatch() throws {
        if !board.hasRunnable && (board.counts[.running] ?? 0) == 0 {
            if !finished {
                finished = true
                for peer in sessions.peers { send(peer, .shutdown(Shutdown(reason: "the sweep is finished"))) }
                finishedSignal.signal()
            }
            return
        }
        if artifacts.isFull {
            // Uploads wait in memory beyond the bound: no new task (and its uploads) until the lanes catch up.
            if !heldForUploads { log.notice("holding new tasks: \(artifacts.waitingBytes >> 20) MiB of uploads wait to be stored (bound \(artifacts.waitingBound >> 20) MiB)") }
            heldForUploads = true
            return
        }
        let time = now()
        if let until = adoptionUntil, time >= until { adoptionUntil = nil; awaitingAdoption = [] }
        // After a restart, a task its worker may still run waits for that worker to rejoin and adopt it.
        let awaiting = awaitingAdoption
        let decisions = awaiting.isEmpty ? scheduler.place(board.runnable, at: time, starts: Self.startsPerTurn)
            : scheduler.place(board.runnable.filter { !awaiting.contains($0.id) }, at: time, starts: Self.startsPerTurn)
        if decisions.count(where: { if case .start = $0 { true } else { false } }) >= Self.startsPerTurn {
            needsDispatch = true
            wakeLoop()
        }
        for decision in decisions {
            switch decision {
            case .start(let task, let worker): try start(task, on: worker)
            case .backup(let choice, let worker): try startBackup(choice, on: worker)
            case .hold(let task, let worker, let faster, let firstTime, let slowSeconds, let freeIn, let fastSeconds):
                guard firstTime else { continue }
                log.info("held \(board.summary(task)) back from \(worker) (\(Self.seconds(slowSeconds)) s there) for \(faster) (free in \(Self.seconds(freeIn)) s, then \(Self.seconds(fastSeconds)) s)")
                try? journal.note("held", ["task": task, "worker": worker, "for": faster])
            }
        }
    }

    private func start(_ id: String, on worker: String) throws {
        guard let peer = sessions.peer(named: worker), let entry = board[id] else { return scheduler.unplaced(id, on: worker) }
        let inputs = board.inputArtifacts(id)
        let row: Journal.TaskRow
        do { row = try journal.started(id, worker: worker) } catch {
            scheduler.unplaced(id, on: worker)
            throw error
        }
        board.update(row)
        let attempt = row.attempts
        scheduler.started(id, attempt: attempt, on: worker, workload: entry.workload, at: now())
        sessions.setStatus(peer, entry.summary)
        dispatchedAt[id] = Date()
        send(peer, .task(TaskAssignment(taskID: id, attempt: attempt, spec: entry.row.spec, inputs: inputs,
                                        datasetFiles: options.datasetFiles, takesLogs: true)))
        options.monitor?.taskStarted(id, summary: entry.summary, worker: worker, attempt: attempt)
        let from = entry.row.checkpoint == nil ? "" : " (resuming from its checkpoint)"
        log.info("start \(entry.summary) on \(worker), attempt \(attempt)\(from)")
    }

    /// Sends `worker` a backup copy of a running training, from the task's latest checkpoint.
    private func startBackup(_ choice: BackupTasks.Choice, on worker: String) throws {
        guard let peer = sessions.peer(named: worker), let entry = board[choice.task] else { return scheduler.unplaced(choice.task, on: worker) }
        let inputs = board.inputArtifacts(choice.task)
        let attempt: Int
        do { attempt = try journal.startBackup(choice.task, worker: worker, of: choice.original) } catch {
            scheduler.unplaced(choice.task, on: worker)
            throw error
        }
        try refresh(choice.task)
        scheduler.started(choice.task, attempt: attempt, on: worker, workload: entry.workload, at: now(), backupOf: choice.original)
        sessions.setStatus(peer, "backup of \(entry.summary)")
        send(peer, .task(TaskAssignment(taskID: choice.task, attempt: attempt, spec: entry.row.spec, inputs: inputs, datasetFiles: options.datasetFiles)))
        let holder = scheduler.copies.of(choice.task).first { $0.attempt == choice.original }?.worker ?? "?"
        log.info("backup of attempt \(choice.original) of \(entry.summary) on \(worker) as attempt \(attempt): expected \(Self.seconds(choice.originalSeconds)) s more on \(holder), \(Self.seconds(choice.backupSeconds)) s here\(entry.row.checkpoint == nil ? "" : " (from its checkpoint)")")
    }

    /// Workers listed by name in the status line at most; a fleet's others are counted.
    static let statusWorkers = 40

    /// Tasks by state, per-worker state, throughput and the estimated time left (from the
    /// mean time of the trainings finished in this run; pruning steps take seconds).
    public func statusLine() -> String {
        let counts = board.counts
        let minutes = Date().timeIntervalSince(started) / 60
        var line = "status: \(counts[.done] ?? 0)/\(board.total) done, \(counts[.running] ?? 0) running, \(counts[.queued] ?? 0) queued, \(counts[.failed] ?? 0) failed"
        if trainingsThisRun > 0 {
            let workers = max(1, scheduler.workers.values.filter { !$0.quarantined }.count)
            let left = Double(board.trainingsLeft) * trainingSecondsThisRun / Double(trainingsThisRun) / Double(workers)
            line += String(format: " | %.1f trainings/min, ETA ", Double(trainingsThisRun) / max(minutes, 1e-9)) + RemainingTime.describe(left)
        }
        let listed = sessions.all.sorted { $0.name < $1.name }
        let speeds = Dictionary(grouping: scheduler.speeds.all, by: \.worker)
        for session in listed.prefix(Self.statusWorkers) {
            line += "\n    \(session.name): \(scheduler.workers[session.name]?.quarantined ?? false ? "quarantined" : session.status)"
            for estimate in speeds[session.name] ?? [] {
                line += " | \(String(format: "%.0f", estimate.imagesPerSecond)) images/s on \(estimate.workload)"
            }
        }
        if listed.count > Self.statusWorkers { line += "\n    … and \(listed.count - Self.statusWorkers) more workers (coordinator status lists every task)" }
        return line
    }
}
