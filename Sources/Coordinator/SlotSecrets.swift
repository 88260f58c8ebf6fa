import Foundation
import TaskRuntime

/// A secret per worker slot the coordinator launches, handed to the slot's process in its
/// environment and presented in its `hello`. It tells a relaunch of the slot (which takes
/// over the old session at once) from an impostor using the slot's name (refused while the
/// session lives). A slot keeps its secret across relaunches; a Slurm job's tasks share their
/// host's, as they share its environment. Manual hosts get none: their command is printed.
public struct SlotSecrets: Sendable {
    private let byName: [String: String]

    /// Fresh random secrets for the local, ssh and Slurm slots of `cluster`, by worker name.
    public init(cluster: ClusterConfig) {
        var secrets: [String: String] = [:]
        for host in cluster.hosts where host.launcher != .manual {
            let shared = host.launcher == .slurm ? SlotSecret.random() : nil
            for index in 1...max(1, host.workers) { secrets["\(host.name)-w\(index)"] = shared ?? SlotSecret.random() }
        }
        byName = secrets
    }

    /// No secrets (a coordinator that launches nothing).
    public init() { byName = [:] }

    /// The secret of the slot that runs the worker `name`, if the coordinator launched it.
    public subscript(name: String) -> String? { byName[name] }
}
