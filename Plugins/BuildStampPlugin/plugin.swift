import Foundation
import PackagePlugin

/// Stamps the `BuildStamp` target with the git commit the build comes from, and whether the
/// tree was dirty, by running `scripts/build-stamp.sh`. SwiftPM reruns it when any source file
/// of the package, `Package.swift`, or git's HEAD, index or current branch changes (a commit
/// rewrites the index); a prebuild command would not do: SwiftPM skips plugins entirely when
/// no source changed, so a commit alone would leave the old stamp.
///
/// On the `KernelStamp` target it runs `scripts/kernel-stamp.sh` instead: a digest of the
/// convolution kernels' sources, which changes only with them.
@main
struct BuildStampPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let sources = context.package.targets.compactMap(\.sourceModule).flatMap { $0.sourceFiles.map(\.url) }
        if target.name == "KernelStamp" {
            let script = package.appendingPathComponent("scripts/kernel-stamp.sh")
            let generated = context.pluginWorkDirectoryURL.appendingPathComponent("KernelStamp.generated.swift")
            return [.buildCommand(displayName: "Stamping the build with its kernels' sources",
                                  executable: URL(fileURLWithPath: "/bin/sh"), arguments: [script.path, package.path, generated.path],
                                  inputFiles: sources + [script], outputFiles: [generated])]
        }
        let script = package.appendingPathComponent("scripts/build-stamp.sh")
        let generated = context.pluginWorkDirectoryURL.appendingPathComponent("BuildStamp.generated.swift")
        return [.buildCommand(displayName: "Stamping the build with its git commit",
                              executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: [script.path, package.path, generated.path],
                              inputFiles: sources + [script, package.appendingPathComponent("Package.swift")] + Self.gitState(of: package),
                              outputFiles: [generated])]
    }

    /// The files git changes on a commit, a checkout or staging: HEAD, the index, the branch's
    /// ref. `.git` is a directory in a clone and a `gitdir:` file in a worktree, whose branch
    /// refs live in the common directory.
    static func gitState(of package: URL) -> [URL] {
        let dotGit = package.appendingPathComponent(".git")
        var gitDirectory = dotGit
        if let pointer = try? String(contentsOf: dotGit, encoding: .utf8), pointer.hasPrefix("gitdir:") {
            let path = pointer.dropFirst("gitdir:".count).trimmingCharacters(in: .whitespacesAndNewlines)
            gitDirectory = path.hasPrefix("/") ? URL(fileURLWithPath: path) : package.appendingPathComponent(path)
        }
        let head = gitDirectory.appendingPathComponent("HEAD")
        var files = [head, gitDirectory.appendingPathComponent("index")]
        if let text = try? String(contentsOf: head, encoding: .utf8), text.hasPrefix("ref: ") {
            let ref = text.dropFirst("ref: ".count).trimmingCharacters(in: .whitespacesAndNewlines)
            let common = (try? String(contentsOf: gitDirectory.appendingPathComponent("commondir"), encoding: .utf8))
                .map { gitDirectory.appendingPathComponent($0.trimmingCharacters(in: .whitespacesAndNewlines)).standardizedFileURL } ?? gitDirectory
            files += [gitDirectory.appendingPathComponent(ref), common.appendingPathComponent(ref)]
        }
        return files.filter { FileManager.default.fileExists(atPath: $0.path) }
    }
}
