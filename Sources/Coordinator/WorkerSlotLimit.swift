import Foundation
import Protocol

/// The most tasks one worker may hold at once, whatever its `hello` claims: a peer's `slots`
/// is its own word, and believing a claim of a billion handed one peer every queued task.
/// A slot the coordinator launched runs one task (one worker process per slot of cluster.json).
/// Any other worker (`--connect`, a manual host's) gets `maximum` when the coordinator was
/// given one (`--max-worker-slots`), else its GPUs × its host's `slotsPerGPU` (the GPUs its
/// `CUDA_VISIBLE_DEVICES` names, at most its cluster.json host's `gpus`), or 1 on a CPU.
public struct WorkerSlotLimit: Sendable {
    /// Tasks a launched slot runs: each slot is one worker process, which trains one task at a time.
    public static let perLaunchedSlot = 1

    private let hosts: [String: ClusterConfig.Host]
    /// The bound of every worker the coordinator did not start (nil: from its device).
    public let maximum: Int?

    /// The limits of `cluster`'s workers; `maximum` replaces the default of the workers it does not start.
    public init(cluster: ClusterConfig, maximum: Int? = nil) {
        hosts = Dictionary(cluster.hosts.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.maximum = maximum
    }

    /// The bound of the worker that said `hello` (`launched`: it proved to be a slot the
    /// coordinator started), and where the bound comes from, in words for the log.
    public func bound(for hello: Hello, launched: Bool) -> (slots: Int, source: String) {
        if launched { return (Self.perLaunchedSlot, "a launched slot of cluster.json runs one task") }
        if let maximum { return (maximum, "--max-worker-slots") }
        guard let device = hello.device, device != "cpu" else { return (1, "a CPU worker runs one task; raise it with --max-worker-slots") }
        let host = hello.group.flatMap { hosts[$0] }
        var gpus = max(1, (hello.gpu ?? "").split(separator: ",").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.count)
        if let listed = host?.gpus, !listed.isEmpty { gpus = min(gpus, listed.count) }
        let perGPU = host?.slotsPerGPU ?? 1
        return (gpus * perGPU, "\(gpus) GPU(s) × slotsPerGPU \(perGPU)\(host?.slotsPerGPU == nil ? " (its host sets none)" : ""); raise it with --max-worker-slots")
    }
}
