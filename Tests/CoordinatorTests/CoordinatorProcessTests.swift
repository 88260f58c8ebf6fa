import Foundation
import Testing
@testable import Coordinator

/// The `coordinator` program as a user runs it.
@Suite struct CoordinatorProcessTests {
    static var coordinator: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("coordinator")
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = coordinator
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, out, err)
    }

    @Test(.timeLimit(.minutes(3)))
    func smokeSweepFromASweepFile() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("sweep.json")
        try Data(#"{"name":"cli","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.1]}"#.utf8).write(to: file)
        let run = directory.appendingPathComponent("run")
        let result = try Self.run(["--sweep", file.path, "--run-dir", run.path, "--threads", "1"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("report: \(run.path)/report.md"))
        let status = try Self.run(["status", run.path])
        #expect(status.output.contains("tasks: 3  done 3"))
    }

    @Test func invalidSweepFileFailsNamingTheFieldAndWritesNothing() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("sweep.json")
        try Data(#"{"name":"x","preset":"smoke","seeds":[1],"synflowDensities":[5]}"#.utf8).write(to: file)
        let run = directory.appendingPathComponent("run")
        let result = try Self.run(["--sweep", file.path, "--run-dir", run.path, "--threads", "1"])
        #expect(result.status != 0)
        #expect(result.errors.contains("density 5.0"), "\(result.errors)")
        #expect(!FileManager.default.fileExists(atPath: run.path))
    }
}
