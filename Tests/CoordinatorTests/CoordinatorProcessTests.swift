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
        process.arguments = withoutDashboard(arguments)
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try StartedProcesses.run(process)
        defer { StartedProcesses.stop(process) }
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, out, err)
    }

    /// A sweep's arguments with `--no-dashboard` unless they name a dashboard: tests run many
    /// coordinators at once, and only the dashboard's own tests serve one (on a free port).
    static func withoutDashboard(_ arguments: [String]) -> [String] {
        guard arguments.first == "--sweep", !arguments.contains(where: { $0.hasPrefix("--dashboard") || $0 == "--no-dashboard" }) else {
            return arguments
        }
        return arguments + ["--no-dashboard"]
    }

    /// `--in-process` chooses the BLAS core by running `blas-probe` of its own program, as a
    /// worker does: without the command every candidate failed and the slower autodetected
    /// core stayed.
    @Test func hasTheBLASProbe() throws {
        let probe = try Self.run(["blas-probe"])
        let fields = probe.output.split(separator: " ")
        let rate = fields.count == 2 ? Double(fields[1].trimmingCharacters(in: .whitespacesAndNewlines)) : nil
        #expect(probe.status == 0 && rate.map { $0 > 0 } == true, "\(probe.output)\(probe.errors)")
    }

    @Test(.timeLimit(.minutes(10)))
    func smokeSweepFromASweepFile() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("sweep.json")
        try Data(#"{"name":"cli","preset":"smoke","seeds":[1],"synflowIterations":[10],"synflowDensities":[0.1]}"#.utf8).write(to: file)
        let run = directory.appendingPathComponent("run")
        let cluster = try SweepHarness(directory: directory).cluster(workers: 1)
        let result = try Self.run(["--sweep", file.path, "--run-dir", run.path, "--cluster", cluster.path])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("report: \(run.path)/report.md"))
        let status = try Self.run(["status", run.path])
        #expect(status.output.contains("tasks: 3  done 3"), "\(status.output)")
        // `report` writes the outputs again from the journal alone.
        let reportFile = run.appendingPathComponent("report.md")
        try FileManager.default.removeItem(at: reportFile)
        let report = try Self.run(["report", run.path])
        #expect(report.status == 0 && report.output.contains("report: \(reportFile.path)"), "\(report.output)\(report.errors)")
        #expect(try String(contentsOf: reportFile, encoding: .utf8).contains("| synflow | T=10 |"))

        let inProcess = try Self.run(["--sweep", file.path, "--run-dir", directory.appendingPathComponent("in-process").path,
                                      "--in-process", "--threads", "1"])
        #expect(inProcess.status == 0, "\(inProcess.errors)")
        #expect(try Data(contentsOf: run.appendingPathComponent("aggregate.json"))
                == Data(contentsOf: directory.appendingPathComponent("in-process/aggregate.json")), "workers and in-process runs differ")
        // Both ran the masked training on the CPU with the sparse engine's choice by measurement
        // (the default), and each recorded which layers it ran sparse: the same ones.
        let records = try [run, directory.appendingPathComponent("in-process")].map {
            try JSONDecoder().decode([ResultRecord].self, from: Data(contentsOf: $0.appendingPathComponent("results.json")))
        }
        let masked = records.map { $0.filter { $0.density < 1 }.map(\.sparseLayers) }
        #expect(!masked[0].isEmpty && masked[0].allSatisfy { $0 != nil }, "a masked CPU training records its sparse layers")
        #expect(masked[0] == masked[1])
    }

    @Test func invalidSweepFileFailsNamingTheFieldAndWritesNothing() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("sweep.json")
        try Data(#"{"name":"x","preset":"smoke","seeds":[1],"synflowDensities":[5]}"#.utf8).write(to: file)
        let run = directory.appendingPathComponent("run")
        let result = try Self.run(["--sweep", file.path, "--run-dir", run.path, "--threads", "1"])
        #expect(result.status != 0)
        #expect(result.errors.contains("experiments[0] (synflow): density 5 must be a fraction kept in (0, 1]"), "\(result.errors)")
        #expect(!FileManager.default.fileExists(atPath: run.path))

        let presetCases: [([String], String)] = [
            (["--preset", "huge"], "preset \"huge\" is unknown"),
            (["--set", "epochz=3"], "field epochz is not a known field"),
            (["--set", "epochs=0"], "epochs"),
            (["--set", "schedule=wavy"], "schedule \"wavy\""),
            (["--set", "width"], "--set width: write FIELD=VALUE"),
        ]
        for (arguments, message) in presetCases {
            let result = try Self.run(["--sweep", "synflow-iters", "--run-dir", run.path] + arguments)
            #expect(result.status == 2)
            #expect(result.errors.contains(message), "\(arguments): \(result.errors)")
            #expect(!FileManager.default.fileExists(atPath: run.path))
        }
    }
}

/// `kill -9` of the coordinator mid-sweep, then the same command again.
@Suite struct CoordinatorRestartTests {
    @Test(.timeLimit(.minutes(10)))
    func killedCoordinatorResumesWithoutRedoingTasks() throws {
        let directory = try JournalTests.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("sweep.json")
        try Data(#"{"name":"restart","preset":"smoke","seeds":[1,2,3],"synflowIterations":[10],"synflowDensities":[0.2,0.1],"overrides":{"epochs":20}}"#.utf8)
            .write(to: file)
        let run = directory.appendingPathComponent("run")
        let arguments = ["--sweep", file.path, "--run-dir", run.path, "--cluster", try SweepHarness(directory: directory).cluster(workers: 2).path]
        let victimLog = directory.appendingPathComponent("victim.log")
        let victim = try SweepHarness(directory: directory).start(arguments, output: victimLog)
        defer { StartedProcesses.stop(victim) }
        var doneBeforeKill: [String] = []
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && victim.isRunning {
            usleep(20_000)
            guard FileManager.default.fileExists(atPath: run.appendingPathComponent("journal.sqlite").path),
                  let tasks = try? Journal(directory: run).tasks() else { continue }
            doneBeforeKill = tasks.filter { $0.state == .done }.map(\.id)
            if doneBeforeKill.count >= 5 { break }
        }
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        let plan = try SweepPlan(try SweepSpec.load(file))
        try #require(doneBeforeKill.count >= 5 && doneBeforeKill.count < plan.tasks.count,
                     "no kill mid-sweep (\(doneBeforeKill.count) of \(plan.tasks.count) done); the test proved nothing: \((try? String(contentsOf: victimLog, encoding: .utf8)) ?? "")")

        let rerun = try CoordinatorProcessTests.run(arguments)
        #expect(rerun.status == 0, "\(rerun.output)\(rerun.errors)")
        let journal = try Journal(directory: run)
        #expect(try journal.tasks().allSatisfy { $0.state == .done })
        let attempts = try journal.attemptCounts()
        for id in doneBeforeKill { #expect(attempts[id] == 1, "a task finished before the kill ran again") }
        #expect(try journal.results().count == plan.tasks.filter(\.labels.reported).count)
    }
}
