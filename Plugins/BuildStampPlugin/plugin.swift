import Foundation
import PackagePlugin

/// Stamps the `BuildStamp` target with the git commit the build comes from, and whether the
/// tree was dirty: `scripts/build-stamp.sh` runs before every build (a prebuild command, since
/// a commit or an edit changes the stamp without changing any input SwiftPM could track).
@main
struct BuildStampPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        // Only the generated file may be in the output directory: SwiftPM compiles all of it.
        let generated = context.pluginWorkDirectoryURL.appendingPathComponent("generated")
        try FileManager.default.createDirectory(at: generated, withIntermediateDirectories: true)
        return [.prebuildCommand(displayName: "Stamping the build with its git commit",
                                 executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: [package.appendingPathComponent("scripts/build-stamp.sh").path, package.path,
                                             generated.appendingPathComponent("BuildStamp.generated.swift").path],
                                 outputFilesDirectory: generated)]
    }
}
