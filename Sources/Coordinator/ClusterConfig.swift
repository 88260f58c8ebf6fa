import Foundation
import Model
import TaskRuntime

/// `cluster.json`: where the coordinator listens, how it watches its workers, and which
/// worker processes it starts on which hosts. Every field but `hosts` has a default; an
/// unknown field is an error. See docs/cluster.md.
public struct ClusterConfig: Codable, Equatable, Sendable {
    /// How a host's workers are started.
    public enum Launcher: String, Codable, Sendable, CaseIterable {
        /// Worker processes on the coordinator's machine.
        case local
        /// One ssh session per worker to the host.
        case ssh
        /// One Slurm batch job per host, with a task per worker.
        case slurm
        /// Nothing is started: the coordinator prints the command to run by hand.
        case manual
    }

    /// One host and its worker slots.
    public struct Host: Codable, Equatable, Sendable {
        /// The host's name (a label for local hosts).
        public var name: String
        /// How its workers are started.
        public var launcher: Launcher
        /// Worker processes (slots) on the host.
        public var workers: Int
        /// Compute threads per worker (also `OPENBLAS_NUM_THREADS`).
        public var threads: Int
        /// Extra environment variables for every worker of the host.
        public var environment: [String: String]
        /// The worker executable (default: the `worker` next to the `coordinator`; `worker`
        /// on the PATH of ssh and manual hosts).
        public var workerPath: String?
        /// GPU indices handed out to the slots in turn as `CUDA_VISIBLE_DEVICES`.
        public var gpus: [String]?
        /// Workers per listed GPU (nil: `workers` decides); `workers` is then `gpus.count × slotsPerGPU`.
        public var slotsPerGPU: Int?
        /// Where the host keeps unpacked worker bundles (`bundle`), one directory per bundle
        /// hash. ssh and manual: on the host (default `~/.cache/prunesweep/bundles`); slurm: a
        /// directory the coordinator and the nodes share (the bundle is used only when it is set).
        public var bundleDirectory: String?
        /// Tasks the host's workers may run at once (nil: one per worker).
        public var maxTasks: Int?
        /// Where its workers train: auto, cpu, cuda or cuda:N (nil: the worker's default, auto).
        /// With `gpus`, each slot sees only its GPU, so `cuda` means that one.
        public var device: String?
        /// ssh: the destination (default `name`), extra options, the remote working directory.
        public var address: String?, sshOptions: [String], workingDirectory: String?
        /// Slurm: partition, time limit, `--gres`, CPUs per task (default `threads`), extra sbatch arguments.
        public var partition: String?, timeLimit: String?, gres: String?, cpusPerTask: Int?, sbatchArguments: [String]

        /// A host entry.
        public init(name: String, launcher: Launcher = .local, workers: Int = 1, threads: Int = 1,
                    environment: [String: String] = [:], workerPath: String? = nil, gpus: [String]? = nil, maxTasks: Int? = nil,
                    address: String? = nil, sshOptions: [String] = [], workingDirectory: String? = nil,
                    partition: String? = nil, timeLimit: String? = nil, gres: String? = nil, cpusPerTask: Int? = nil,
                    sbatchArguments: [String] = [], device: String? = nil, slotsPerGPU: Int? = nil, bundleDirectory: String? = nil) {
            self.name = name
            self.slotsPerGPU = slotsPerGPU
            self.bundleDirectory = bundleDirectory
            self.device = device
            self.launcher = launcher
            self.workers = workers
            self.threads = threads
            self.environment = environment
            self.workerPath = workerPath
            self.gpus = gpus
            self.maxTasks = maxTasks
            self.address = address
            self.sshOptions = sshOptions
            self.workingDirectory = workingDirectory
            self.partition = partition
            self.timeLimit = timeLimit
            self.gres = gres
            self.cpusPerTask = cpusPerTask
            self.sbatchArguments = sbatchArguments
        }

        private enum CodingKeys: String, CodingKey, CaseIterable {
            case name, launcher, workers, threads, environment, workerPath, gpus, maxTasks, address, sshOptions, workingDirectory
            case partition, timeLimit, gres, cpusPerTask, sbatchArguments, device, slotsPerGPU, bundleDirectory
        }

        public init(from decoder: any Decoder) throws {
            try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let launcherName = try c.decodeIfPresent(String.self, forKey: .launcher) ?? Launcher.local.rawValue
            guard let launcher = Launcher(rawValue: launcherName) else {
                throw DecodingError.dataCorruptedError(forKey: .launcher, in: c, debugDescription:
                    "is \(launcherName.debugDescription), not one of \(Launcher.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let gpus = try c.decodeIfPresent([String].self, forKey: .gpus)
            let slotsPerGPU = try c.decodeIfPresent(Int.self, forKey: .slotsPerGPU)
            self.init(name: try c.decode(String.self, forKey: .name), launcher: launcher,
                      workers: try c.decodeIfPresent(Int.self, forKey: .workers) ?? slotsPerGPU.map { $0 * (gpus?.count ?? 0) } ?? 1,
                      threads: try c.decodeIfPresent(Int.self, forKey: .threads) ?? 1,
                      environment: try c.decodeIfPresent([String: String].self, forKey: .environment) ?? [:],
                      workerPath: try c.decodeIfPresent(String.self, forKey: .workerPath),
                      gpus: gpus,
                      maxTasks: try c.decodeIfPresent(Int.self, forKey: .maxTasks),
                      address: try c.decodeIfPresent(String.self, forKey: .address),
                      sshOptions: try c.decodeIfPresent([String].self, forKey: .sshOptions) ?? [],
                      workingDirectory: try c.decodeIfPresent(String.self, forKey: .workingDirectory),
                      partition: try c.decodeIfPresent(String.self, forKey: .partition),
                      timeLimit: try c.decodeIfPresent(String.self, forKey: .timeLimit),
                      gres: try c.decodeIfPresent(String.self, forKey: .gres),
                      cpusPerTask: try c.decodeIfPresent(Int.self, forKey: .cpusPerTask),
                      sbatchArguments: try c.decodeIfPresent([String].self, forKey: .sbatchArguments) ?? [],
                      device: try c.decodeIfPresent(String.self, forKey: .device), slotsPerGPU: slotsPerGPU,
                      bundleDirectory: try c.decodeIfPresent(String.self, forKey: .bundleDirectory))
        }
    }

    /// Encryption and authentication of the wire (ZeroMQ CURVE).
    public struct Security: Codable, Equatable, Sendable {
        /// When the wire is encrypted.
        public enum Mode: String, Codable, Sendable, CaseIterable {
            /// CURVE unless `bind` is a loopback address.
            case auto
            /// Always CURVE.
            case curve
            /// Never: plain TCP (refused for non-loopback binds unless chosen explicitly).
            case none
        }

        /// The mode (default auto).
        public var mode: Mode
        /// The coordinator's secret key file (from `coordinator keygen`).
        public var coordinatorKey: String?
        /// A file of worker public keys allowed in, one per line.
        public var authorizedKeys: String?
        /// The secret key file handed to the workers the coordinator starts (its public key is allowed in).
        public var workerKey: String?

        /// Security settings.
        public init(mode: Mode = .auto, coordinatorKey: String? = nil, authorizedKeys: String? = nil, workerKey: String? = nil) {
            self.mode = mode
            self.coordinatorKey = coordinatorKey
            self.authorizedKeys = authorizedKeys
            self.workerKey = workerKey
        }

        private enum CodingKeys: String, CodingKey, CaseIterable { case mode, coordinatorKey, authorizedKeys, workerKey }

        public init(from decoder: any Decoder) throws {
            try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let name = try c.decodeIfPresent(String.self, forKey: .mode) ?? Mode.auto.rawValue
            guard let mode = Mode(rawValue: name) else {
                throw DecodingError.dataCorruptedError(forKey: .mode, in: c, debugDescription:
                    "is \(name.debugDescription), not one of \(Mode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.init(mode: mode, coordinatorKey: try c.decodeIfPresent(String.self, forKey: .coordinatorKey),
                      authorizedKeys: try c.decodeIfPresent(String.self, forKey: .authorizedKeys),
                      workerKey: try c.decodeIfPresent(String.self, forKey: .workerKey))
        }

        /// The same settings with relative key paths taken from `directory` (the cluster file's).
        func resolved(against directory: URL) -> Security {
            func absolute(_ path: String?) -> String? {
                path.map { $0.hasPrefix("/") ? $0 : directory.appendingPathComponent($0).standardizedFileURL.path }
            }
            return Security(mode: mode, coordinatorKey: absolute(coordinatorKey), authorizedKeys: absolute(authorizedKeys),
                            workerKey: absolute(workerKey))
        }
    }

    /// The ROUTER's endpoint; `*` as the port picks a free one.
    public var bind: String
    /// The endpoint workers on other hosts connect to (default: the bound one, with a
    /// wildcard address read as loopback).
    public var advertise: String?
    /// Seconds between heartbeats, both ways.
    public var heartbeatSeconds: Double
    /// Heartbeats missed before a peer counts as lost.
    public var missedHeartbeats: Int
    /// Failures by error after which a task is given up (a lost worker is not a failure).
    public var retryLimit: Int
    /// Consecutive failed tasks after which a worker gets no more work.
    public var quarantineAfter: Int
    /// Times a local worker slot is restarted after its process died.
    public var restarts: Int
    /// Seconds a task may run without progress before it is taken from its worker (nil:
    /// 5× the slowest epoch seen, at least 10 minutes).
    public var stallSeconds: Double?
    /// Encryption and authentication.
    public var security: Security
    /// A worker bundle (`make bundle`'s `.tar.xz`) for hosts without `workerPath`: the ssh
    /// launcher copies it to hosts that lack it, Slurm hosts unpack it in their
    /// `bundleDirectory`, manual hosts are told how to fetch it. Relative to the cluster file.
    public var bundle: String?
    /// The hosts.
    public var hosts: [Host]

    /// A cluster.
    public init(bind: String = "tcp://127.0.0.1:5555", advertise: String? = nil, heartbeatSeconds: Double = 2.5, missedHeartbeats: Int = 3,
                retryLimit: Int = 2, quarantineAfter: Int = 3, restarts: Int = 3, stallSeconds: Double? = nil, security: Security = Security(),
                bundle: String? = nil, hosts: [Host]) {
        self.stallSeconds = stallSeconds
        self.security = security
        self.bundle = bundle
        self.advertise = advertise
        self.bind = bind
        self.heartbeatSeconds = heartbeatSeconds
        self.missedHeartbeats = missedHeartbeats
        self.retryLimit = retryLimit
        self.quarantineAfter = quarantineAfter
        self.restarts = restarts
        self.hosts = hosts
    }

    /// The default when there is no cluster.json: this machine, 2 workers × 1 thread.
    public static let thisMachine = ClusterConfig(hosts: [Host(name: "localhost", workers: 2, threads: 1)])

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case bind, advertise, heartbeatSeconds, missedHeartbeats, retryLimit, quarantineAfter, restarts, stallSeconds, security, bundle, hosts
    }

    public init(from decoder: any Decoder) throws {
        try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ClusterConfig.thisMachine
        self.init(bind: try c.decodeIfPresent(String.self, forKey: .bind) ?? d.bind,
                  advertise: try c.decodeIfPresent(String.self, forKey: .advertise),
                  heartbeatSeconds: try c.decodeIfPresent(Double.self, forKey: .heartbeatSeconds) ?? d.heartbeatSeconds,
                  missedHeartbeats: try c.decodeIfPresent(Int.self, forKey: .missedHeartbeats) ?? d.missedHeartbeats,
                  retryLimit: try c.decodeIfPresent(Int.self, forKey: .retryLimit) ?? d.retryLimit,
                  quarantineAfter: try c.decodeIfPresent(Int.self, forKey: .quarantineAfter) ?? d.quarantineAfter,
                  restarts: try c.decodeIfPresent(Int.self, forKey: .restarts) ?? d.restarts,
                  stallSeconds: try c.decodeIfPresent(Double.self, forKey: .stallSeconds),
                  security: try c.decodeIfPresent(Security.self, forKey: .security) ?? d.security,
                  bundle: try c.decodeIfPresent(String.self, forKey: .bundle),
                  hosts: try c.decode([Host].self, forKey: .hosts))
    }

    /// Reads and checks a cluster file; every problem names the file and the field.
    public static func load(_ url: URL) throws(SweepError) -> ClusterConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw .invalid("cannot read cluster file \(url.path): \(error.localizedDescription)") }
        var config: ClusterConfig
        do { config = try JSONDecoder().decode(ClusterConfig.self, from: data) } catch {
            throw .invalid(StrictKeys.explain(error, file: url, kind: "cluster file"))
        }
        config.security = config.security.resolved(against: url.deletingLastPathComponent())
        config.bundle = config.bundle.map { $0.hasPrefix("/") ? $0 : url.deletingLastPathComponent().appendingPathComponent($0).standardizedFileURL.path }
        do { try config.validate() } catch { throw .invalid("\(url.path): \(error)") }
        return config
    }

    /// Checks the values the types cannot.
    public func validate() throws(SweepError) {
        guard bind.hasPrefix("tcp://"), bind.dropFirst(6).contains(":") else {
            throw .invalid("field bind: \(bind.debugDescription) is not tcp://ADDRESS:PORT (use * as the port for any free one)")
        }
        if let advertise, !advertise.hasPrefix("tcp://") { throw .invalid("field advertise: \(advertise.debugDescription) is not tcp://ADDRESS:PORT") }
        guard heartbeatSeconds >= 0.05 && heartbeatSeconds <= 60 else {
            throw .invalid("field heartbeatSeconds: \(heartbeatSeconds) must be in 0.05...60")
        }
        guard missedHeartbeats >= 1 else { throw .invalid("field missedHeartbeats: \(missedHeartbeats) must be ≥ 1") }
        guard retryLimit >= 0 else { throw .invalid("field retryLimit: \(retryLimit) must be ≥ 0") }
        guard quarantineAfter >= 1 else { throw .invalid("field quarantineAfter: \(quarantineAfter) must be ≥ 1") }
        if let stallSeconds, !(stallSeconds > 0) {
            throw .invalid("field stallSeconds: \(stallSeconds) must be > 0 (seconds a task may go without progress); leave it out for 5× the slowest epoch, at least 600")
        }
        guard restarts >= 0 else { throw .invalid("field restarts: \(restarts) must be ≥ 0") }
        if usesCurve {
            guard security.coordinatorKey != nil else {
                throw .invalid("field security.coordinatorKey is missing: \(security.mode == .curve ? "security.mode is curve" : "bind \(bind) is not loopback, so the wire is encrypted (CURVE)"); create keys with `coordinator keygen --out keys/coordinator` and name keys/coordinator.key here")
            }
            guard security.authorizedKeys != nil || security.workerKey != nil else {
                throw .invalid("field security.authorizedKeys is missing: list the workers' public keys (keys/NAME.pub from `coordinator keygen`) in a file and name it here, or set security.workerKey")
            }
        }
        if let bundle, !FileManager.default.isReadableFile(atPath: bundle) {
            throw .invalid("field bundle: \(bundle) does not exist or cannot be read; build one with `make bundle` (dist/prunesweep-worker-COMMIT.tar.xz)")
        }
        guard !hosts.isEmpty else { throw .invalid("field hosts is empty: list at least one host") }
        var seen = Set<String>()
        for (index, host) in hosts.enumerated() {
            guard !host.name.isEmpty else { throw .invalid("field hosts[\(index)].name is empty") }
            // The name goes into worker names, log file names and the workers' command lines.
            guard host.name.first != "-", host.name.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) }) else {
                throw .invalid("field hosts[\(index)].name: \(host.name.debugDescription) must be letters, digits, '.', '_' and '-', not beginning with '-' (it names the host's workers and their log files)")
            }
            // ssh takes the destination after the host's options; one beginning with "-" would be another option.
            if let address = host.address, address.isEmpty || address.first == "-" {
                throw .invalid("field hosts[\(index)].address: \(address.debugDescription) is not an ssh destination; write user@host or an alias of ~/.ssh/config (options go in sshOptions)")
            }
            guard seen.insert(host.name).inserted else { throw .invalid("field hosts[\(index)].name: \(host.name.debugDescription) is listed twice") }
            if let slots = host.slotsPerGPU {
                guard slots >= 1 else { throw .invalid("field hosts[\(index)].slotsPerGPU: \(slots) must be ≥ 1") }
                guard let gpus = host.gpus, !gpus.isEmpty else {
                    throw .invalid("field hosts[\(index)].slotsPerGPU needs field gpus: list the host's GPU indices, e.g. [\"0\", \"1\"]")
                }
                guard host.workers == gpus.count * slots else {
                    throw .invalid("field hosts[\(index)].workers: \(host.workers) is not gpus × slotsPerGPU = \(gpus.count) × \(slots); leave workers out")
                }
                guard host.launcher != .slurm else {
                    throw .invalid("field hosts[\(index)].slotsPerGPU: Slurm hands out a job's GPUs itself (gres); set workers and gres for a slurm host instead")
                }
            }
            guard host.workers >= 1 else { throw .invalid("field hosts[\(index)].workers: \(host.workers) must be ≥ 1") }
            guard host.threads >= 1 else { throw .invalid("field hosts[\(index)].threads: \(host.threads) must be ≥ 1") }
            if let cap = host.maxTasks, cap < 1 { throw .invalid("field hosts[\(index)].maxTasks: \(cap) must be ≥ 1") }
            if let cpus = host.cpusPerTask, cpus < 1 { throw .invalid("field hosts[\(index)].cpusPerTask: \(cpus) must be ≥ 1") }
            if let device = host.device, ComputeDevice.Request(device) == nil {
                throw .invalid("field hosts[\(index)].device: \(device.debugDescription) must be auto, cpu, cuda or cuda:N")
            }
        }
    }

    /// Whether `bind` listens on loopback only.
    public var bindsLoopback: Bool {
        let host = bind.dropFirst("tcp://".count).split(separator: ":").dropLast().joined(separator: ":")
        return host.hasPrefix("127.") || host == "localhost" || host == "[::1]"
    }

    /// Whether the wire is encrypted: CURVE when asked for, or by default off loopback.
    public var usesCurve: Bool {
        switch security.mode {
        case .curve: true
        case .none: false
        case .auto: !bindsLoopback
        }
    }

    /// Seconds of silence after which a peer is lost.
    public var deadAfterSeconds: Double { heartbeatSeconds * Double(missedHeartbeats) }
}
