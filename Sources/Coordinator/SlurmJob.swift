import Foundation
import TaskRuntime

/// A Slurm batch job running one host's workers: one job with a task per worker (`srun`
/// starts them, each named after its task rank), submitted with `sbatch` and cancelled with
/// `scancel`. A worker that Slurm preempts or kills is, to the coordinator, a lost worker.
struct SlurmJob {
    /// The job id sbatch gave.
    let id: String

    /// Writes the batch script for `host` to `logs/` and submits it; a failure names the host.
    /// `prologue` runs in the script before the workers start (the bundle's `sbcast`).
    static func submit(host: ClusterConfig.Host, worker: String, arguments: [String], environment: [String: String],
                       prologue: [String] = [], logs: URL) throws -> SlurmJob {
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        var lines = ["#!/bin/bash",
                     "#SBATCH --job-name=prunesweep-\(host.name)",
                     "#SBATCH --ntasks=\(host.workers)",
                     "#SBATCH --cpus-per-task=\(host.cpusPerTask ?? host.threads)",
                     "#SBATCH --output=\(logs.appendingPathComponent("slurm-\(host.name)-%j.log").path)"]
        if let partition = host.partition { lines.append("#SBATCH --partition=\(partition)") }
        if let time = host.timeLimit { lines.append("#SBATCH --time=\(time)") }
        if let gres = host.gres { lines.append("#SBATCH --gres=\(gres)") }
        if let directory = host.workingDirectory { lines.append("#SBATCH --chdir=\(directory)") }
        lines += environment.sorted { $0.key < $1.key }.map { "export \(SSHCommand.quote("\($0.key)=\($0.value)"))" }
        lines += prologue
        // The worker's name uses the task's rank, which only the task's own shell knows.
        let command = ([SSHCommand.quote(worker)] + arguments.map { $0.contains("$((SLURM_PROCID") ? "\"\($0)\"" : SSHCommand.quote($0) })
            .joined(separator: " ")
        lines.append("srun --kill-on-bad-exit=0 bash -c \(SSHCommand.quote("exec \(command)"))")
        let script = logs.appendingPathComponent("slurm-\(host.name).sh")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: script)

        let (status, output, errors) = try Subprocess.run(["sbatch", "--parsable"] + host.sbatchArguments + [script.path])
        guard status == 0, let id = output.split(separator: ";").first.map(String.init), !id.isEmpty else {
            throw SweepError.invalid("host \(host.name): sbatch failed (status \(status)): \(errors.trimmingCharacters(in: .whitespacesAndNewlines)); is Slurm running here (sinfo)? script: \(script.path)")
        }
        return SlurmJob(id: id.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Cancels the job; returns what went wrong, if anything.
    func cancel() -> String? {
        guard let (status, _, errors) = try? Subprocess.run(["scancel", id]) else { return "scancel could not be run" }
        return status == 0 ? nil : "scancel exited with \(status): \(errors)"
    }
}
