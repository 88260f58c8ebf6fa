import Foundation
import TaskRuntime
import Testing
@testable import Coordinator

/// Putting a worker bundle in a host's cache, run here as for a Slurm host's shared
/// directory (the ssh path runs the same script on the host: SSHTests).
@Suite struct WorkerBundleTests {
    /// A tiny archive holding `files` (path → shell script body) under a staging directory.
    private static func archive(_ files: [String: String], in directory: URL, name: String) throws -> URL {
        let stage = directory.appendingPathComponent("stage-\(name)")
        for (path, body) in files {
            let url = stage.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("#!/bin/sh\n\(body)\n".utf8).write(to: url)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        let archive = directory.appendingPathComponent("\(name).tar.xz")
        let result = try Subprocess.run(["sh", "-c", "tar -C \"$1\" -cf - . | xz -0 > \"$2\"", "sh", stage.path, archive.path])
        try #require(result.status == 0, "\(result.errors)")
        return archive
    }

    @Test func aBundleIsUnpackedOnceUnderItsHashAndFoundTheNextTime() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.archive(["prunesweep/worker": "echo bundled worker"], in: directory, name: "bundle")
        let bundle = try WorkerBundle(path: file.path)
        let bytes = try Data(contentsOf: file)
        #expect(bundle.sha256 == ArtifactStore.hash(bytes) && bundle.bytes == bytes.count)
        let base = directory.appendingPathComponent("shared/bundles").path
        let host = ClusterConfig.Host(name: "batch", launcher: .slurm, bundleDirectory: base)
        guard case .copied = try bundle.installHere(under: base, host: host) else { Issue.record("the first install did not unpack"); return }
        #expect(try Subprocess.run([bundle.worker(under: base)]).output == "bundled worker\n")
        guard case .cached = try bundle.installHere(under: base, host: host) else { Issue.record("the second install unpacked again"); return }
        // Only the finished directory is left: no partial copy, no archive.
        #expect(try FileManager.default.contentsOfDirectory(atPath: base) == [bundle.sha256])
    }

    @Test func anArchiveWithoutAWorkerIsRefusedByNameAndLeavesNothing() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.archive(["something/else": "true"], in: directory, name: "not-a-bundle")
        let base = directory.appendingPathComponent("cache").path
        let host = ClusterConfig.Host(name: "batch", launcher: .slurm, bundleDirectory: base)
        let error = #expect(throws: SweepError.self) { try WorkerBundle(path: file.path).installHere(under: base, host: host) }
        #expect("\(error!)".contains("host batch") && "\(error!)".contains("not-a-bundle.tar.xz has no prunesweep/worker"), "\(error!)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: base).isEmpty)
    }
}
