import Foundation

/// A secret per worker slot the coordinator launches, handed to the slot's process in its
/// environment and presented in its `hello`. It tells a relaunch of the slot (which takes
/// over the old session at once) from an impostor using the slot's name (refused while the
/// session lives). A slot keeps its secret across relaunches; a Slurm job's tasks share their
/// host's, as they share its environment. Manual hosts get none: their command is printed.
public struct SlotSecrets: Sendable {
    /// The environment variable the worker reads its secret from.
    public static let environmentKey = "PRUNESWEEP_SLOT_SECRET"
    private let byName: [String: String]

    /// Fresh random secrets for the local, ssh and Slurm slots of `cluster`, by worker name.
    public init(cluster: ClusterConfig) {
        var secrets: [String: String] = [:]
        for host in cluster.hosts where host.launcher != .manual {
            let shared = host.launcher == .slurm ? Self.random() : nil
            for index in 1...max(1, host.workers) { secrets["\(host.name)-w\(index)"] = shared ?? Self.random() }
        }
        byName = secrets
    }

    /// No secrets (a coordinator that launches nothing).
    public init() { byName = [:] }

    /// The secret of the slot that runs the worker `name`, if the coordinator launched it.
    public subscript(name: String) -> String? { byName[name] }

    /// A worker process's secret for its `hello`: its slot's from the environment, else a
    /// fresh one of its own, so that its reconnects take over its session and nobody else can.
    public static func ofThisProcess() -> String { ProcessInfo.processInfo.environment[environmentKey] ?? random() }

    /// 32 random bytes, hex.
    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
