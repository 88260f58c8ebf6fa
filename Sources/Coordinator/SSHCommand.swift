/// The remote side of an ssh-launched worker: one shell command line, every word quoted, and
/// what ssh's exit status says when the launch failed.
enum SSHCommand {
    /// `cd DIR && exec env K=V … WORKER ARGS…` for the remote shell.
    static func remote(worker: String, arguments: [String], environment: [String: String], directory: String?) -> String {
        let variables = environment.sorted { $0.key < $1.key }.map { quote("\($0.key)=\($0.value)") }
        let command = (["exec", "env"] + variables + [path(worker)] + arguments.map(quote)).joined(separator: " ")
        return directory.map { "cd \(path($0)) && \(command)" } ?? command
    }

    /// A word in single quotes for a POSIX shell.
    static func quote(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// `K=V … WORKER ARGS…` as one line to paste into a POSIX shell: each value or argument
    /// that holds anything but letters, digits and `_-./:=,@+%` is quoted (CURVE keys hold `$`,
    /// `&`, `(` and the like), a variable's name is not (quoted, it would be a command), and
    /// a worker path under `~/` is a `path`.
    static func line(environment: [String: String], worker: String, arguments: [String]) -> String {
        let variables = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\(word($0.value))" }
        let command = worker == "~" || worker.hasPrefix("~/") ? path(worker) : word(worker)
        return (variables + [command] + arguments.map(word)).joined(separator: " ")
    }

    /// `word` as typed where a shell would take it as it is, else quoted: command lines shown
    /// to people stay readable.
    static func word(_ word: String) -> String {
        !word.isEmpty && word.utf8.allSatisfy { plain.contains($0) } ? word : quote(word)
    }

    private static let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=,@+%".utf8)

    /// A path for a POSIX shell: quoted, except that a leading `~/` becomes `"$HOME"/`, so
    /// paths under the remote home work from any working directory.
    static func path(_ path: String) -> String {
        if path == "~" { return "\"$HOME\"" }
        return path.hasPrefix("~/") ? "\"$HOME\"/" + quote(String(path.dropFirst(2))) : quote(path)
    }

    /// What an ssh exit status means for the host's launch.
    static func explain(status: Int32, host: ClusterConfig.Host) -> String {
        let destination = host.address ?? host.name
        switch status {
        case 255: return "could not be started: ssh to \(destination) failed (status 255: host unreachable, or the ssh key was refused; check `ssh \(destination)` by hand)"
        case 127: return "could not be started on \(destination): the worker executable \(host.workerPath ?? "worker") was not found there (status 127); set workerPath"
        case 126: return "could not be started on \(destination): \(host.workerPath ?? "worker") is not executable there (status 126)"
        default: return "exited with status \(status) on \(destination)"
        }
    }
}
