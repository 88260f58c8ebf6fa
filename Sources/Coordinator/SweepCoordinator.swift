import Foundation
import Protocol

/// A whole distributed sweep: records the plan in the run directory's journal, binds the
/// ROUTER, starts the cluster's workers, serves tasks until the sweep is finished, stops the
/// workers and writes results, aggregate and report. Rerunning it on the same run directory
/// resumes: finished tasks are never redone, interrupted ones resume from their checkpoints.
public struct SweepCoordinator {
    /// The sweep, its run directory and the cluster that runs it.
    public let sweep: SweepSpec, runDirectory: URL, cluster: ClusterConfig

    /// What a finished sweep leaves for the caller to report.
    public struct Outcome: Sendable {
        /// The report's path.
        public var report: URL
        /// Tasks that failed for good (and so their dependants never ran).
        public var failed: Int
        /// Frames the coordinator rejected.
        public var rejectedFrames: Int
        /// Per task: seconds from dispatch to accepted result beyond the worker's step time.
        public var overheads: [Double]
    }

    /// A coordinator of `sweep` in `runDirectory` over `cluster`.
    public init(sweep: SweepSpec, runDirectory: URL, cluster: ClusterConfig) {
        self.sweep = sweep
        self.runDirectory = runDirectory
        self.cluster = cluster
    }

    /// Runs the sweep to its end. `log` hears every line of live progress; `onBound` the endpoint.
    public func run(extend: Bool = false, log: @escaping @Sendable (String) -> Void,
                    onBound: (String) -> Void = { _ in }) throws -> Outcome {
        let plan = try SweepPlan(sweep)
        let journal = try Journal(directory: runDirectory)
        try journal.record(sweep: sweep, plan: plan, extend: extend)
        let requeued = try journal.requeueInterrupted()
        if !requeued.isEmpty { log("resuming: \(requeued.count) interrupted task(s) back in the queue; finished tasks are kept") }
        let store = try ArtifactStore(runDirectory: runDirectory)
        let server = SweepServer(journal: journal, store: store, options: .init(cluster: cluster), log: log)
        let bind = cluster.bind
        let loop: SocketLoop
        do {
            loop = try SocketLoop(setUp: {
                let socket = try ZMQSocket(.router)
                try socket.set(ZMQSocket.routerMandatory, 1)
                try socket.set(ZMQSocket.routerHandover, 1)
                return (socket, try socket.bind(bind))
            }, onMessage: { server.receive($0) }, onTick: { server.tick() })
        } catch {
            throw SweepError.invalid("cannot listen on \(bind) (cluster.json field bind): \(error); is another coordinator running? Use another port, or * for any free one")
        }
        server.attach(loop.send)
        try? Data((loop.endpoint + "\n").utf8).write(to: runDirectory.appendingPathComponent("coordinator.endpoint"))
        log("listening on \(loop.endpoint) (no encryption: loopback/local mode)")
        onBound(loop.endpoint)
        let launcher = LocalLauncher(cluster: cluster, endpoint: loop.endpoint, runDirectory: runDirectory, log: log)
        do { try launcher.start() } catch {
            loop.stop()
            throw error
        }
        while !server.waitUntilFinished(seconds: 0.25) { launcher.maintain() }
        launcher.stop(grace: 10)
        loop.stop()
        let report = try SweepOutputs.write(journal: journal, sweep: sweep, runDirectory: runDirectory)
        let failed = try journal.tasks().filter { $0.state != .done }.count
        return Outcome(report: report, failed: failed, rejectedFrames: server.rejectedFrames, overheads: server.overheads)
    }
}
