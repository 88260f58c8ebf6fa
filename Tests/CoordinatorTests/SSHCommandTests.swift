import Foundation
import Testing
@testable import Coordinator

/// Command lines the coordinator hands to a shell: over ssh, in a Slurm script, and the
/// line it prints for a manual host.
@Suite struct SSHCommandTests {
    @Test func remotePathsUnderTheHomeExpandThere() {
        #expect(SSHCommand.path("~/.cache/prunesweep/bundles/x/prunesweep/worker") == #""$HOME"/'.cache/prunesweep/bundles/x/prunesweep/worker'"#)
        #expect(SSHCommand.path("/opt/it's") == #"'/opt/it'\''s'"#)
    }

    /// A manual host's line, pasted into a shell, gives the worker every word as it was
    /// (a CURVE key holds `$`, `&`, `(` and may begin with `-`) and sets its variables;
    /// plain words stay unquoted, so the line reads as typed.
    @Test func aManualHostsLineReadsBackThroughAShell() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let worker = directory.appendingPathComponent("print arguments")
        try Data("#!/bin/sh\nprintf '%s\\n' \"$PRUNESWEEP_TEST\" \"$@\"\n".utf8).write(to: worker)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: worker.path)
        let z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
        let arguments = ["--server-key=-u@%3hv/gIcfgjx8}-OV0stiIl86.]DfSPgmGr95", z85, "it's", "", "--threads", "4"]
        let variable = "a $b & 'c'"
        let line = SSHCommand.line(environment: ["PRUNESWEEP_TEST": variable], worker: worker.path, arguments: arguments)
        #expect(line.hasSuffix(" --threads 4"), "\(line)")
        #expect(SSHCommand.line(environment: ["OPENBLAS_NUM_THREADS": "4"], worker: "worker", arguments: ["--name", "box-w1"])
                == "OPENBLAS_NUM_THREADS=4 worker --name box-w1")
        #expect(SSHCommand.line(environment: [:], worker: "~/prunesweep/worker", arguments: [])
                == #""$HOME"/'prunesweep/worker'"#)

        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", line]
        let output = Pipe()
        shell.standardOutput = output
        try shell.run()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        shell.waitUntilExit()
        #expect(shell.terminationStatus == 0)
        #expect(String(decoding: printed, as: UTF8.self) == ([variable] + arguments).map { $0 + "\n" }.joined(), "\(line)")
    }
}
