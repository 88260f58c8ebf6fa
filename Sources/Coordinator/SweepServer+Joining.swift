import BuildStamp
import Foundation
import Protocol
import TaskRuntime

/// Workers joining: who may speak for a worker name, the slots it gets, and the tasks a
/// reconnecting worker still runs (carried over from its old session, or adopted after a
/// coordinator restart).
extension SweepServer {
    func join(_ peer: Data, _ hello: Hello, key: String?) throws {
        guard hello.version == CodeVersion.current else {
            log.warning("refused worker \(hello.worker) on \(hello.host): it runs version \(hello.version), this coordinator \(CodeVersion.current); install the same build on both")
            return send(peer, .shutdown(Shutdown(reason: "refused: version \(hello.version) does not match the coordinator's \(CodeVersion.current)")))
        }
        let build = hello.build ?? "unknown (a worker older than build stamps)", own = BuildInfo.current.identifier
        guard hello.build == own || options.allowMixedBuilds else {
            log.warning("refused worker \(hello.worker) on \(hello.host): it is build \(build), this coordinator \(own); install this build there (docs/cluster.md, bundle) or start the sweep with --allow-mixed-builds")
            return send(peer, .shutdown(Shutdown(reason: "refused: this worker is build \(build), the coordinator \(own); run the same commit on both, or start the coordinator with --allow-mixed-builds")))
        }
        if hello.build != own { log.notice("worker \(hello.worker) on \(hello.host) is build \(build), this coordinator \(own); mixed builds are allowed (results.json records each one's commit)") }
        guard hello.slots >= 1 else {
            log.warning("refused worker \(hello.worker) on \(hello.host): its hello declares \(hello.slots) slots; a worker runs at least 1 task")
            return send(peer, .shutdown(Shutdown(reason: "refused: hello field slots is \(hello.slots); declare at least 1")))
        }
        if let refusal = nameRefusal(peer, hello, key: key) {
            refuse(peer, refusal.reason, "hello as worker \(hello.worker) (\(refusal.detail))", event: "name-refused")
            return send(peer, .shutdown(Shutdown(reason: "refused: \(refusal.detail)")))
        }
        if let key, nameKeys[hello.worker] == nil {
            nameKeys[hello.worker] = key
            try journal.note("name-bound", ["worker": hello.worker, "key": key])
        }
        // The same worker on a new connection, or its slot relaunched (it proved so with its
        // secret): whatever its old session ran and it no longer runs is lost.
        var carried: [String: Int] = [:]
        if let previous = sessions[peer], previous.name != hello.worker {
            // The connection speaks for another name now: the old name's session ends.
            sessions.remove(peer)
            for (task, attempt) in scheduler.left(previous.name).sorted(by: { $0.key < $1.key }) {
                try lose(task, attempt: attempt, worker: previous.name, why: "its connection introduced itself as \(hello.worker)")
            }
        }
        if let oldPeer = sessions.peer(named: hello.worker) {
            sessions.remove(oldPeer)
            // On the same connection nothing is lost in between: ZeroMQ keeps one connection's
            // order both ways, so a task sent on it that this hello does not name crossed the
            // hello and reaches the worker after it (a worker asked to rejoin right after
            // being given a task); the worker runs it. Only a new connection loses what it omits.
            let sameConnection = oldPeer == peer
            for (task, attempt) in scheduler.left(hello.worker).sorted(by: { $0.key < $1.key }) {
                if sameConnection || hello.running.contains(task) { carried[task] = attempt } else { try lose(task, attempt: attempt, worker: hello.worker, why: "it restarted") }
            }
        }
        sessions.add(WorkerSession(peer: peer, hello: hello, liveness: Liveness(interval: options.heartbeatSeconds,
                                                                                allowedMisses: options.missedHeartbeats, now: now())))
        scheduler.joined(hello.worker, host: hello.host, group: hello.group, slots: try slots(of: hello), running: carried)
        for task in hello.running where carried[task] == nil {
            awaitingAdoption.remove(task)
            if let attempt = try journal.adopt(task, worker: hello.worker) {
                try refresh(task)
                scheduler.started(task, attempt: attempt, on: hello.worker, workload: board[task]?.workload, at: now())
                let summary = board.summary(task)
                sessions.setStatus(peer, summary)
                dispatchedAt[task] = dispatchedAt[task] ?? Date()
                log.info("worker \(hello.worker) still runs \(summary); adopted (attempt \(attempt))")
            } else {
                send(peer, .cancel(Cancel(taskID: task, reason: "the task is done or runs elsewhere")))
            }
        }
        try journal.note("join", ["worker": hello.worker, "host": hello.host, "threads": String(hello.threads), "blas": hello.blasCore])
        options.monitor?.workerJoined(hello, at: now())
        log.info("worker \(hello.worker) joined from \(hello.host): \(hello.threads) thread(s) of \(hello.cores) cores, BLAS \(hello.blasCore)\(hello.gpu.map { ", GPU \($0)" } ?? ""), device \(hello.device ?? "cpu")")
        send(peer, .heartbeat)
        needsDispatch = true
    }

    /// The slots the worker that said `hello` gets: its claim, cut to its bound with one
    /// warning (and a `slots-cut` event) per worker name.
    private func slots(of hello: Hello) throws -> Int {
        // A launched slot's name reaches here only with its secret (`nameRefusal`).
        let (bound, source) = options.slotLimit.bound(for: hello, launched: options.slotSecrets[hello.worker] != nil)
        guard hello.slots > bound else { return hello.slots }
        if slotClaimsCut.insert(hello.worker).inserted {
            log.warning("worker \(hello.worker) on \(hello.host) claims \(hello.slots) slots; it gets at most \(bound) (\(source))")
            try journal.note("slots-cut", ["worker": hello.worker, "claimed": String(hello.slots), "bound": String(bound)])
        }
        return bound
    }

    /// Why `hello` may not speak for its worker name, if it may not. Under CURVE a name is
    /// bound to the key that first used it in the sweep. A launched slot's name needs the
    /// slot's secret. Any other name in use by a live session needs that session's secret
    /// (the same process reconnecting); a second peer cannot take a live worker's session.
    private func nameRefusal(_ peer: Data, _ hello: Hello, key: String?) -> (reason: String, detail: String)? {
        if let key, let owner = nameKeys[hello.worker], owner != key {
            return ("worker name bound to another key",
                    "worker name \(hello.worker) belongs to CURVE key \(owner), which first used it in this sweep; this peer's key is \(key). Give this worker its own --name")
        }
        if let slotSecret = options.slotSecrets[hello.worker] {
            guard hello.secret == slotSecret else {
                return ("a launched slot's name without its secret",
                        "worker name \(hello.worker) belongs to a slot the coordinator launched, and this hello lacks the slot's secret (\(SlotSecret.environmentKey)). Give this worker another --name")
            }
            return nil
        }
        guard let livePeer = sessions.peer(named: hello.worker), livePeer != peer, let live = sessions[livePeer],
              !live.liveness.isDead(at: now()), hello.secret == nil || hello.secret != live.hello.secret else { return nil }
        return ("worker name in use by a live session",
                "worker name \(hello.worker) is in use by a live session, and this hello is not from the same process. Give this worker another --name, or stop the other one")
    }
}
