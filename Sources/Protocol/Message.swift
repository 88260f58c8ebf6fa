import Foundation

/// Everything the coordinator and workers say to each other. Each case's header is a typed,
/// JSON-encoded record; artifact chunks carry their bytes as one extra frame.
public enum Message: Equatable, Sendable {
    /// Worker → coordinator, first: who the worker is.
    case hello(Hello)
    /// Worker → coordinator: how many more tasks it can take.
    case ready(Ready)
    /// Coordinator → worker: run a step.
    case task(TaskAssignment)
    /// Worker → coordinator: an epoch finished.
    case progress(Progress)
    /// Either way: send me bytes of this artifact.
    case artifactGet(ArtifactRequest)
    /// Either way: bytes of an artifact (answer to `artifactGet`, or an upload).
    case artifactChunk(ArtifactChunk, Data)
    /// Worker → coordinator: a step finished; its outputs are artifacts by hash.
    case result(TaskResult)
    /// Worker → coordinator: a step failed.
    case error(TaskFailure)
    /// Coordinator → worker: a result is recorded (or was a duplicate); the worker may forget it.
    case accepted(Accepted)
    /// Coordinator → worker: stop working on a task (it finished elsewhere or was reassigned).
    case cancel(Cancel)
    /// Either way: I am alive.
    case heartbeat
    /// Coordinator → worker: stop (the sweep is over, or this worker is refused).
    case shutdown(Shutdown)
    /// Worker → coordinator: a line of the worker's log, for the coordinator's (sent only to
    /// coordinators whose `task` said they take them).
    case log(WorkerLogLine)

    /// The wire name of the message type.
    public var type: String {
        switch self {
        case .hello: "hello"
        case .ready: "ready"
        case .task: "task"
        case .progress: "progress"
        case .artifactGet: "artifact-get"
        case .artifactChunk: "artifact-chunk"
        case .result: "result"
        case .error: "error"
        case .accepted: "accepted"
        case .cancel: "cancel"
        case .heartbeat: "heartbeat"
        case .shutdown: "shutdown"
        case .log: "log"
        }
    }
}

/// A worker's introduction.
public struct Hello: Codable, Equatable, Sendable {
    /// A name unique to this worker process (host, slot and process id).
    public var worker: String
    /// The host it runs on.
    public var host: String
    /// Cores of the host and threads this worker computes with.
    public var cores: Int, threads: Int
    /// The BLAS kernel family in use, and which products oneDNN computes (`BLAS.engineSummary`).
    public var blasCore: String
    /// The worker's code version (the wire's compatibility: a different one is always refused).
    public var version: String
    /// The build it comes from: `COMMIT` or `COMMIT-dirty-CHANGES` (`BuildInfo.identifier`);
    /// nil from workers older than the field. A different build is refused unless the sweep
    /// allows mixed builds.
    public var build: String?
    /// Tasks the worker is still running (after a reconnect), so a restarted coordinator can
    /// adopt them instead of starting them again.
    public var running: [String]
    /// The GPU index the worker was given (`CUDA_VISIBLE_DEVICES`), if any.
    public var gpu: String?
    /// The cluster.json host the worker was started for (host-level limits apply to it).
    public var group: String?
    /// The device it trains on, in words ("cpu", or the GPU with its driver and libraries), and
    /// the precision it uses where the experiment names none ("fp32" on CPUs, "tf32" on GPUs).
    public var device: String?, precision: String?
    /// Tasks the worker runs at once: its credit never exceeds this, less the tasks it holds.
    public var slots: Int
    /// The worker's secret: its slot's, when the coordinator launched it (a relaunch takes
    /// over the slot's session at once), else one of its own process (its reconnects are
    /// recognised). A `hello` under the name of a live session without that session's secret
    /// is refused.
    public var secret: String?

    /// A hello record.
    public init(worker: String, host: String, cores: Int, threads: Int, blasCore: String, version: String,
                running: [String] = [], gpu: String? = nil, group: String? = nil, slots: Int = 1,
                device: String? = nil, precision: String? = nil, secret: String? = nil, build: String? = nil) {
        self.secret = secret
        self.build = build
        self.group = group
        self.slots = slots
        self.device = device
        self.precision = precision
        self.worker = worker
        self.host = host
        self.cores = cores
        self.threads = threads
        self.blasCore = blasCore
        self.version = version
        self.running = running
        self.gpu = gpu
    }
}

/// Credit: the number of further tasks a worker accepts.
public struct Ready: Codable, Equatable, Sendable {
    /// Tasks the worker can take now.
    public var credit: Int
    /// A ready record.
    public init(credit: Int) { self.credit = credit }
}

/// A step to run.
public struct TaskAssignment: Codable, Equatable, Sendable {
    /// The task's identity (content hash of its specification and inputs).
    public var taskID: String
    /// The attempt number, from 1.
    public var attempt: Int
    /// The step's specification as JSON text (its schema belongs to the step).
    public var spec: String
    /// Input artifacts by role ("weights", "mask", "checkpoint"…), as content hashes.
    public var inputs: [String: String]
    /// The sweep's dataset files by name, as content hashes (nil or empty for generated data):
    /// a worker fetches the ones it lacks like any other artifact.
    public var datasetFiles: [String: String]?
    /// True from a coordinator that takes `log` messages (nil from older ones, which would
    /// reject them as an unknown type): the worker then sends it its log lines.
    public var takesLogs: Bool?

    /// A task record.
    public init(taskID: String, attempt: Int, spec: String, inputs: [String: String], datasetFiles: [String: String]? = nil,
                takesLogs: Bool? = nil) {
        self.takesLogs = takesLogs
        self.taskID = taskID
        self.attempt = attempt
        self.spec = spec
        self.inputs = inputs
        self.datasetFiles = datasetFiles
    }
}

/// An epoch of a running task.
public struct Progress: Codable, Equatable, Sendable {
    /// The task and attempt.
    public var taskID: String, attempt: Int
    /// Epochs done and in all.
    public var epoch: Int, epochs: Int
    /// Metrics of the epoch (loss, accuracies, seconds…).
    public var metrics: [String: Double]
    /// The hash of the epoch's checkpoint, once uploaded (a lost worker's task resumes from it).
    public var checkpoint: String?

    /// A progress record.
    public init(taskID: String, attempt: Int, epoch: Int, epochs: Int, metrics: [String: Double], checkpoint: String?) {
        self.taskID = taskID
        self.attempt = attempt
        self.epoch = epoch
        self.epochs = epochs
        self.metrics = metrics
        self.checkpoint = checkpoint
    }
}

/// A request for part of an artifact.
public struct ArtifactRequest: Codable, Equatable, Sendable {
    /// The artifact's SHA-256.
    public var hash: String
    /// The first byte wanted.
    public var offset: Int
    /// Bytes wanted at most.
    public var length: Int

    /// A request record.
    public init(hash: String, offset: Int, length: Int) {
        self.hash = hash
        self.offset = offset
        self.length = length
    }
}

/// Where a chunk's bytes sit in its artifact.
public struct ArtifactChunk: Codable, Equatable, Sendable {
    /// The artifact's SHA-256 (checked by the receiver over the whole artifact).
    public var hash: String
    /// The chunk's first byte within the artifact, and the artifact's size.
    public var offset: Int, total: Int

    /// A chunk record.
    public init(hash: String, offset: Int, total: Int) {
        self.hash = hash
        self.offset = offset
        self.total = total
    }
}

/// A finished step.
public struct TaskResult: Codable, Equatable, Sendable {
    /// The task and attempt.
    public var taskID: String, attempt: Int
    /// Output artifacts by role, as content hashes.
    public var outputs: [String: String]
    /// The step's metrics as JSON text.
    public var metrics: String

    /// A result record.
    public init(taskID: String, attempt: Int, outputs: [String: String], metrics: String) {
        self.taskID = taskID
        self.attempt = attempt
        self.outputs = outputs
        self.metrics = metrics
    }
}

/// A failed step.
public struct TaskFailure: Codable, Equatable, Sendable {
    /// The task and attempt.
    public var taskID: String, attempt: Int
    /// What went wrong, for the log.
    public var message: String

    /// A failure record.
    public init(taskID: String, attempt: Int, message: String) {
        self.taskID = taskID
        self.attempt = attempt
        self.message = message
    }
}

/// The answer to a result.
public struct Accepted: Codable, Equatable, Sendable {
    /// The task and attempt the result was for.
    public var taskID: String, attempt: Int
    /// True when the task already had a result and this one was dropped.
    public var duplicate: Bool

    /// An accepted record.
    public init(taskID: String, attempt: Int, duplicate: Bool) {
        self.taskID = taskID
        self.attempt = attempt
        self.duplicate = duplicate
    }
}

/// A task the worker should stop.
public struct Cancel: Codable, Equatable, Sendable {
    /// The task.
    public var taskID: String
    /// Why, for the worker's log.
    public var reason: String

    /// A cancel record.
    public init(taskID: String, reason: String) {
        self.taskID = taskID
        self.reason = reason
    }
}

/// Why a worker is told to stop.
public struct Shutdown: Codable, Equatable, Sendable {
    /// The reason, for the worker's log.
    public var reason: String
    /// True when the worker should not exit but introduce itself again (the coordinator does
    /// not know it, e.g. after the coordinator restarted or declared it lost).
    public var rejoin: Bool

    /// A shutdown record.
    public init(reason: String, rejoin: Bool = false) {
        self.reason = reason
        self.rejoin = rejoin
    }
}

/// A line of a worker's log, carried to the coordinator's log under the worker's name.
public struct WorkerLogLine: Codable, Equatable, Sendable {
    /// When the worker logged it (seconds since 1970, the worker's clock).
    public var time: Double
    /// The swift-log level's name (`trace` … `critical`).
    public var level: String
    /// The task the line is about, by id, if any.
    public var taskID: String?
    /// The line (the coordinator cuts it at `maximumLength` characters).
    public var message: String

    /// Characters of a message the coordinator keeps: a worker cannot flood its log file.
    public static let maximumLength = 4096

    /// A log line record.
    public init(time: Double, level: String, taskID: String?, message: String) {
        self.time = time
        self.level = level
        self.taskID = taskID
        self.message = message
    }
}
