import Crypto
import Foundation
import Model
import TaskRuntime

/// A worker bundle (`make bundle`: a `.tar.xz` holding `prunesweep/worker`) and how it gets
/// onto a host. A host keeps each bundle it was given in `BASE/SHA256/`, named by the
/// archive's content hash, so a host that has this exact build is recognised by a directory
/// check and one that lacks it is sent the archive once; later sweeps start from the cache.
/// The directory appears only once the archive's hash is verified and it is wholly unpacked.
struct WorkerBundle {
    /// The archive, its SHA-256 (hex) and its size in bytes.
    let file: URL, sha256: String, bytes: Int

    /// Where hosts keep bundles unless their `bundleDirectory` says otherwise.
    static let defaultBase = "~/.cache/prunesweep/bundles"

    /// Where a Slurm job without a shared `bundleDirectory` unpacks the bundle on each node:
    /// node-local, so a node's workers start from its own disk.
    static let nodeLocalBase = "/tmp/prunesweep-bundles"

    /// Reads and hashes the archive at `path`.
    init(path: String) throws(SweepError) {
        file = URL(fileURLWithPath: path)
        guard let handle = try? FileHandle(forReadingFrom: file) else {
            throw .invalid("cluster.json field bundle: cannot read \(path); build one with `make bundle`")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var count = 0
        while let chunk = try? handle.read(upToCount: 1 << 22), !chunk.isEmpty {
            hasher.update(data: chunk)
            count += chunk.count
        }
        sha256 = hasher.finalize().hexDigits
        bytes = count
    }

    /// The worker wrapper of this bundle once unpacked under `base`.
    func worker(under base: String) -> String { "\(base)/\(sha256)/prunesweep/worker" }

    /// A shell script that reads the archive on its standard input, checks its hash, unpacks
    /// it beside the cache and moves it into place (a concurrent install of the same bundle
    /// may win the move; either way the bundle is then there).
    func installScript(under base: String) -> String {
        let directory = SSHCommand.path(base)
        return """
            set -e
            command -v xz > /dev/null || { echo "xz is not installed on $(hostname) (tar needs it to unpack the bundle): install xz-utils" >&2; exit 90; }
            mkdir -p \(directory)
            tmp=$(mktemp -d \(directory)/.partial-XXXXXX)
            trap 'rm -rf "$tmp"' EXIT
            cat > "$tmp/bundle.tar.xz"
            echo "\(sha256)  $tmp/bundle.tar.xz" | sha256sum -c --status || { echo "the copy of the bundle on $(hostname) does not have sha256 \(sha256) (a broken transfer): run the sweep again" >&2; exit 91; }
            tar -C "$tmp" -xJf "$tmp/bundle.tar.xz"
            rm "$tmp/bundle.tar.xz"
            test -x "$tmp/prunesweep/worker" || { echo "\(file.lastPathComponent) has no prunesweep/worker: it is not a worker bundle (make bundle)" >&2; exit 92; }
            mv -T "$tmp" \(directory)/\(sha256) 2> /dev/null || test -x \(SSHCommand.path(worker(under: base)))
            """
    }

    /// How a host's bundle got there.
    enum Installed {
        /// It was there already.
        case cached
        /// It was copied, taking this many seconds.
        case copied(seconds: Double)
    }

    /// Makes sure the ssh host has the bundle under `base`, copying it when it lacks it.
    func install(overSSH host: ClusterConfig.Host, under base: String) throws(SweepError) -> Installed {
        let destination = host.address ?? host.name
        let ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"] + host.sshOptions + [destination]
        let check = try run(ssh + ["test -x \(SSHCommand.path(worker(under: base)))"], host: host, what: "check for the bundle")
        if check.status == 0 { return .cached }
        guard check.status == 1 else {
            throw .invalid("host \(host.name): cannot check for the worker bundle: \(SSHCommand.explain(status: check.status, host: host)) \(check.errors)")
        }
        let start = Date()
        let copy = try run(ssh + ["sh -c \(SSHCommand.quote(installScript(under: base)))"], input: file, host: host, what: "copy the bundle")
        guard copy.status == 0 else {
            throw .invalid("host \(host.name): copying the worker bundle to \(destination) failed (status \(copy.status)): \(copy.errors.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return .copied(seconds: Date().timeIntervalSince(start))
    }

    /// Makes sure the bundle is unpacked under `base` on this machine (a Slurm host's
    /// directory shared with its nodes).
    func installHere(under base: String, host: ClusterConfig.Host) throws(SweepError) -> Installed {
        if FileManager.default.isExecutableFile(atPath: worker(under: base)) { return .cached }
        let start = Date()
        let result = try run(["sh", "-c", installScript(under: base)], input: file, host: host, what: "unpack the bundle")
        guard result.status == 0 else {
            throw .invalid("host \(host.name): unpacking the worker bundle into its bundleDirectory \(base) failed (status \(result.status)): \(result.errors.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return .copied(seconds: Date().timeIntervalSince(start))
    }

    /// The batch-script lines that put the bundle on every node of a Slurm job without a
    /// shared directory: `sbcast` copies the archive to each node's /tmp (it reads it on the
    /// job's first node, so the archive's path must be readable there), then one task per
    /// node unpacks it under `nodeLocalBase` unless that node has this build already.
    func sbcastLines() -> [String] {
        let staged = "/tmp/prunesweep-bundle-\(sha256.prefix(16)).tar.xz"
        let install = "test -x \(worker(under: Self.nodeLocalBase)) || sh -c \(SSHCommand.quote(installScript(under: Self.nodeLocalBase))) < \(staged)"
        let sbcastFailed = "sbcast could not copy \(file.path) to the job's nodes: it must be readable on the job's first node; or give the host a shared bundleDirectory"
        return ["sbcast --force \(SSHCommand.quote(file.path)) \(staged) || { echo \(SSHCommand.quote(sbcastFailed)) >&2; exit 1; }",
                "srun --nodes=$SLURM_JOB_NUM_NODES --ntasks=$SLURM_JOB_NUM_NODES --ntasks-per-node=1 sh -c \(SSHCommand.quote(install)) || { echo 'unpacking the worker bundle failed on a node (its message is above)' >&2; exit 1; }"]
    }

    /// The commands that put the bundle on a manual host by hand.
    func manualSteps(under base: String) -> String {
        "copy \(file.path) (sha256 \(sha256)) to the host, then run there: mkdir -p \(base)/\(sha256) && tar -C \(base)/\(sha256) -xJf \(file.lastPathComponent)"
    }

    private func run(_ arguments: [String], input: URL? = nil, host: ClusterConfig.Host, what: String) throws(SweepError) -> (status: Int32, errors: String) {
        do {
            let result = try Subprocess.run(arguments, input: input)
            return (result.status, result.errors)
        } catch {
            throw .invalid("host \(host.name): cannot \(what): \(arguments[0]) could not be started (\(error))")
        }
    }
}
