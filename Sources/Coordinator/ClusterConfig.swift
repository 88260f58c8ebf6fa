import Foundation

/// `cluster.json`: where the coordinator listens, how it watches its workers, and which
/// worker processes it starts on which hosts. Every field but `hosts` has a default; an
/// unknown field is an error. See docs/cluster.md.
public struct ClusterConfig: Codable, Equatable, Sendable {
    /// How a host's workers are started.
    public enum Launcher: String, Codable, Sendable, CaseIterable {
        /// Worker processes on the coordinator's machine.
        case local
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
        /// The worker executable (default: the `worker` next to the `coordinator`).
        public var workerPath: String?

        /// A host entry.
        public init(name: String, launcher: Launcher = .local, workers: Int = 1, threads: Int = 1,
                    environment: [String: String] = [:], workerPath: String? = nil) {
            self.name = name
            self.launcher = launcher
            self.workers = workers
            self.threads = threads
            self.environment = environment
            self.workerPath = workerPath
        }

        private enum CodingKeys: String, CodingKey, CaseIterable {
            case name, launcher, workers, threads, environment, workerPath
        }

        public init(from decoder: any Decoder) throws {
            try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let launcherName = try c.decodeIfPresent(String.self, forKey: .launcher) ?? Launcher.local.rawValue
            guard let launcher = Launcher(rawValue: launcherName) else {
                throw DecodingError.dataCorruptedError(forKey: .launcher, in: c, debugDescription:
                    "is \(launcherName.debugDescription), not one of \(Launcher.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.init(name: try c.decode(String.self, forKey: .name), launcher: launcher,
                      workers: try c.decodeIfPresent(Int.self, forKey: .workers) ?? 1,
                      threads: try c.decodeIfPresent(Int.self, forKey: .threads) ?? 1,
                      environment: try c.decodeIfPresent([String: String].self, forKey: .environment) ?? [:],
                      workerPath: try c.decodeIfPresent(String.self, forKey: .workerPath))
        }
    }

    /// The ROUTER's endpoint; `*` as the port picks a free one.
    public var bind: String
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
    /// The hosts.
    public var hosts: [Host]

    /// A cluster.
    public init(bind: String = "tcp://127.0.0.1:5555", heartbeatSeconds: Double = 2.5, missedHeartbeats: Int = 3,
                retryLimit: Int = 2, quarantineAfter: Int = 3, restarts: Int = 3, hosts: [Host]) {
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
        case bind, heartbeatSeconds, missedHeartbeats, retryLimit, quarantineAfter, restarts, hosts
    }

    public init(from decoder: any Decoder) throws {
        try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ClusterConfig.thisMachine
        self.init(bind: try c.decodeIfPresent(String.self, forKey: .bind) ?? d.bind,
                  heartbeatSeconds: try c.decodeIfPresent(Double.self, forKey: .heartbeatSeconds) ?? d.heartbeatSeconds,
                  missedHeartbeats: try c.decodeIfPresent(Int.self, forKey: .missedHeartbeats) ?? d.missedHeartbeats,
                  retryLimit: try c.decodeIfPresent(Int.self, forKey: .retryLimit) ?? d.retryLimit,
                  quarantineAfter: try c.decodeIfPresent(Int.self, forKey: .quarantineAfter) ?? d.quarantineAfter,
                  restarts: try c.decodeIfPresent(Int.self, forKey: .restarts) ?? d.restarts,
                  hosts: try c.decode([Host].self, forKey: .hosts))
    }

    /// Reads and checks a cluster file; every problem names the file and the field.
    public static func load(_ url: URL) throws(SweepError) -> ClusterConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw .invalid("cannot read cluster file \(url.path): \(error.localizedDescription)") }
        let config: ClusterConfig
        do { config = try JSONDecoder().decode(ClusterConfig.self, from: data) } catch {
            throw .invalid(StrictKeys.explain(error, file: url, kind: "cluster file"))
        }
        do { try config.validate() } catch { throw .invalid("\(url.path): \(error)") }
        return config
    }

    /// Checks the values the types cannot.
    public func validate() throws(SweepError) {
        guard bind.hasPrefix("tcp://"), bind.dropFirst(6).contains(":") else {
            throw .invalid("field bind: \(bind.debugDescription) is not tcp://ADDRESS:PORT (use * as the port for any free one)")
        }
        guard heartbeatSeconds >= 0.05 && heartbeatSeconds <= 60 else {
            throw .invalid("field heartbeatSeconds: \(heartbeatSeconds) must be in 0.05...60")
        }
        guard missedHeartbeats >= 1 else { throw .invalid("field missedHeartbeats: \(missedHeartbeats) must be ≥ 1") }
        guard retryLimit >= 0 else { throw .invalid("field retryLimit: \(retryLimit) must be ≥ 0") }
        guard quarantineAfter >= 1 else { throw .invalid("field quarantineAfter: \(quarantineAfter) must be ≥ 1") }
        guard restarts >= 0 else { throw .invalid("field restarts: \(restarts) must be ≥ 0") }
        guard !hosts.isEmpty else { throw .invalid("field hosts is empty: list at least one host") }
        var seen = Set<String>()
        for (index, host) in hosts.enumerated() {
            guard !host.name.isEmpty else { throw .invalid("field hosts[\(index)].name is empty") }
            guard seen.insert(host.name).inserted else { throw .invalid("field hosts[\(index)].name: \(host.name.debugDescription) is listed twice") }
            guard host.workers >= 1 else { throw .invalid("field hosts[\(index)].workers: \(host.workers) must be ≥ 1") }
            guard host.threads >= 1 else { throw .invalid("field hosts[\(index)].threads: \(host.threads) must be ≥ 1") }
        }
    }

    /// Seconds of silence after which a peer is lost.
    public var deadAfterSeconds: Double { heartbeatSeconds * Double(missedHeartbeats) }
}
