import Foundation
import Protocol
import TaskRuntime

/// The outcomes of an attempt: progress, results (checked by `ResultIntake` on a file lane,
/// then accepted once here), failures, stalls and lost workers.
extension SweepServer {
    func record(_ progress: Protocol.Progress, session: WorkerSession) throws {
        let time = now(), task = progress.taskID
        if let estimate = scheduler.progressed(task, attempt: progress.attempt, epoch: progress.epoch, seconds: progress.metrics["seconds"], at: time) {
            // Journaled, so `coordinator status` and a restarted coordinator see it; an idle worker may now warrant a backup.
            try journal.noteSpeed(worker: estimate.worker, host: estimate.host, workload: estimate.workload, imagesPerSecond: estimate.imagesPerSecond)
            needsDispatch = true
        }
        if let checkpoint = progress.checkpoint {
            // After the checkpoint's upload is stored (file work keeps the order).
            artifacts.contains(checkpoint, after: session.name) { [self] present in
                guard present, scheduler.checkpointed(task, epoch: progress.epoch) else { return }
                do {
                    try journal.checkpoint(task, artifact: checkpoint)
                    try refresh(task)
                } catch { log.error("cannot journal the checkpoint of \(board.summary(task)): \(error)") }
            }
        }
        let accuracy = progress.metrics["testAccuracy"].map { " test \(Self.tenths($0 * 100))%" } ?? ""
        let summary = board.summary(task)
        options.monitor?.taskProgressed(progress, summary: summary, worker: session.name)
        sessions.setStatus(session.peer, "\(summary) epoch \(progress.epoch)/\(progress.epochs)\(accuracy)")
        log.info("  \(session.name): \(summary) epoch \(progress.epoch)/\(progress.epochs)\(accuracy)")
    }

    /// Checks a result's outputs off the socket thread; `settle` takes the verdict. The
    /// worker's slot is free as soon as the result is here (its `ready` follows it): its next
    /// task does not wait for the check (docs/protocol.md, "A result frees its slot").
    func check(_ result: TaskResult, session: WorkerSession) {
        guard let entry = board[result.taskID] else { return reject(session.peer, "result for an unknown task", "result for unknown task \(result.taskID.prefix(12))") }
        let peer = session.peer, name = session.name, delivered = now()
        scheduler.delivered(result.taskID, attempt: result.attempt, by: name, at: delivered)
        idleIfFree(peer, name)
        needsDispatch = true
        let attempt = ResultCheck.Attempt(worker: name, host: session.hello.host, gpu: session.hello.gpu, build: session.hello.build,
                                          wallSeconds: dispatchedAt[result.taskID].map { Date().timeIntervalSince($0) })
        intake.check(result, of: entry.spec, inputs: board.inputArtifacts(result.taskID), attempt: attempt) { [self] verdict in
            do { try settle(result, verdict, attempt: attempt, peer: peer, delivered: delivered) } catch {
                log.error("error taking the result of \(board.summary(result.taskID)) from \(name): \(error)")
            }
        }
    }

    /// The status of `name` (at `peer`) is idle when it runs nothing (a delivered result's
    /// check is the coordinator's work, and its next task may already run).
    func idleIfFree(_ peer: Data, _ name: String) {
        if scheduler.workers[name]?.busy ?? 0 == 0 { sessions.setStatus(peer, "idle") }
    }

    /// Accepts a checked result once, or fails the attempt whose outputs are missing,
    /// corrupt or not what the step makes (it retries elsewhere, never a silent accept). The
    /// attempt ended when its result was `delivered` (the journal's attempt times say when
    /// the worker ran it).
    private func settle(_ result: TaskResult, _ verdict: ResultCheck, attempt: ResultCheck.Attempt, peer: Data, delivered: Double) throws {
        let worker = attempt.worker
        guard let session = sessions[peer], session.name == worker, scheduler.holds(worker, result.taskID, attempt: result.attempt) else {
            // The attempt ended while its outputs were checked (another copy won, or the worker was lost).
            if sessions[peer] != nil, board[result.taskID]?.row.state == .done {
                send(peer, .accepted(Accepted(taskID: result.taskID, attempt: result.attempt, duplicate: true)))
            }
            return
        }
        if let failure = verdict.failure {
            return try fail(TaskFailure(taskID: result.taskID, attempt: result.attempt, message: failure), session: session, endedAt: delivered)
        }
        guard let entry = board[result.taskID] else { return }
        let task = entry.spec, summary = entry.summary
        let losers = scheduler.finished(result.taskID, attempt: result.attempt, on: worker, at: now())
        idleIfFree(peer, worker)
        let elapsed = attempt.wallSeconds ?? verdict.stepSeconds
        let row = try journal.completed(result.taskID, attempt: result.attempt, outputs: result.outputs, record: verdict.record, endedAt: delivered)
        if let row { board.update(row) }
        send(peer, .accepted(Accepted(taskID: result.taskID, attempt: result.attempt, duplicate: row == nil)))
        guard row != nil else { return log.notice("dropped a duplicate result of \(summary) from \(worker)") }
        options.monitor?.taskDone(result.taskID, summary: summary, worker: worker, seconds: elapsed)
        if dispatchedAt[result.taskID] != nil { overheads.append(max(0, elapsed - verdict.stepSeconds)) }
        dispatchedAt[result.taskID] = nil
        if case .train = task.step {
            trainingsThisRun += 1
            trainingSecondsThisRun += elapsed
        }
        for loser in losers {
            guard let otherPeer = sessions.peer(named: loser.worker) else { continue }
            idleIfFree(otherPeer, loser.worker)
            lostRace.insert(otherPeer)
            send(otherPeer, .cancel(Cancel(taskID: result.taskID, reason: "finished on \(worker)")))
            log.info("cancelled attempt \(loser.attempt) of \(summary) on \(loser.worker): attempt \(result.attempt) on \(worker) finished first")
        }
        log.info("[\(board.counts[.done] ?? 0)/\(board.total)] done \(summary) on \(worker) in \(Self.tenths(elapsed)) s")
        needsDispatch = true
    }

    /// An attempt failed: its worker's `error`, or its result's outputs refused (then it ended
    /// `endedAt`, when the result came).
    func fail(_ failure: TaskFailure, session: WorkerSession, endedAt: Double? = nil) throws {
        guard scheduler.holds(session.name, failure.taskID, attempt: failure.attempt) else { return }
        let summary = board.summary(failure.taskID)
        let another = scheduler.failed(failure.taskID, attempt: failure.attempt, on: session.name)
        idleIfFree(session.peer, session.name)
        if another {
            try journal.endCopy(failure.taskID, attempt: failure.attempt, .error, message: failure.message, endedAt: endedAt)
            log.warning("\(session.name) failed its copy of \(summary): \(failure.message) — the other copy runs on")
            try strike(session.peer, "failed")
            needsDispatch = true
            return
        }
        dispatchedAt[failure.taskID] = nil
        try journal.abandon(failure.taskID, attempt: failure.attempt, lostWorker: false, message: failure.message, retryLimit: options.retryLimit,
                            endedAt: endedAt)
        try refresh(failure.taskID)
        let state = board[failure.taskID]?.row.state
        options.monitor?.taskFailed(failure.taskID, summary: summary, worker: session.name, message: failure.message, givenUp: state == .failed)
        log.error("\(session.name) failed \(summary): \(failure.message)\(state == .failed ? " — given up after \(options.retryLimit + 1) failures" : " — will retry on another worker")")
        try strike(session.peer, "failed")
        needsDispatch = true
    }

    /// Takes a task whose holder heartbeats but has shown no progress for longer than the
    /// stall limit: it goes back to the queue as a lost task (no failure of the task) and
    /// resumes elsewhere from its checkpoint; the worker is told to cancel it, and the stall
    /// counts against the worker as a failure does.
    func stall(_ task: String, attempt: Int, peer: Data, worker: String, silence: Double) throws {
        sessions.setStatus(peer, "idle")
        let seconds = String(format: "%.1f", silence), limit = String(format: "%.0f", scheduler.stallWatch.limit)
        try journal.note("stalled", ["worker": worker, "task": task, "silentSeconds": seconds])
        send(peer, .cancel(Cancel(taskID: task, reason: "no progress for \(seconds) s, over the stall limit of \(limit) s (cluster.json stallSeconds); the task runs elsewhere")))
        try lose(task, attempt: attempt, worker: worker, why: "no progress on the task for \(seconds) s, over the stall limit of \(limit) s, while it heartbeats")
        try strike(peer, "failed or stalled")
    }

    /// One more failed (or stalled) task of a worker in a row; at `quarantineAfter` it gets
    /// no more work and is told so.
    func strike(_ peer: Data, _ what: String) throws {
        guard let session = sessions[peer], let count = scheduler.strike(session.name) else { return }
        try journal.note("quarantine", ["worker": session.name])
        log.warning("quarantined worker \(session.name) after \(count) \(what) tasks in a row; check its log")
        send(peer, .shutdown(Shutdown(reason: "refused: quarantined after \(count) \(what) tasks in a row")))
    }

    func lose(_ task: String, attempt: Int, worker: String, why: String) throws {
        let summary = board.summary(task)
        if scheduler.lost(task, attempt: attempt, on: worker) {
            try journal.endCopy(task, attempt: attempt, .lost, message: "worker \(worker) lost: \(why)")
            log.warning("worker \(worker) lost (\(why)); the other copy of \(summary) runs on")
            needsDispatch = true
            return
        }
        try journal.abandon(task, attempt: attempt, lostWorker: true, message: "worker \(worker) lost: \(why)", retryLimit: options.retryLimit)
        try refresh(task)
        dispatchedAt[task] = nil
        let resume = board[task]?.row.checkpoint == nil ? "from the start" : "from its last checkpoint"
        options.monitor?.taskRequeued(task, summary: summary, worker: worker, why: why)
        log.warning("worker \(worker) lost (\(why)); \(summary) goes back to the queue and resumes \(resume)")
        needsDispatch = true
    }
}
