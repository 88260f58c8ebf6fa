import Foundation
import Logging
import Protocol
import Testing
@testable import Coordinator
@testable import Monitoring
import SweepLog
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The dashboard and `/metrics` of a real smoke sweep on loopback, and the token off loopback.
@Suite struct DashboardTests {
    /// GET `url` (loopback only); the status and the body, or nil when nothing answered.
    static func get(_ url: String, bearer: String? = nil) -> (status: Int, body: String)? {
        guard let address = URL(string: url), address.host == "127.0.0.1" else { return nil }
        var request = URLRequest(url: address, timeoutInterval: 20)
        if let bearer { request.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        let answer = Locked<(Int, String)?>(nil)
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, _ in
            if let response = response as? HTTPURLResponse {
                answer.with { $0 = (response.statusCode, String(decoding: data ?? Data(), as: UTF8.self)) }
            }
            done.signal()
        }.resume()
        done.wait()
        return answer.with { $0 }.map { (status: $0.0, body: $0.1) }
    }

    /// The samples of a Prometheus text exposition by `name{labels}`; every line must be a
    /// comment (`# HELP`, `# TYPE` with a known type) or `name[{labels}] value`.
    static func prometheus(_ text: String) throws -> [String: Double] {
        let sample = #/^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})?) (\S+)$/#
        let comment = #/^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/#
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") {
            if line.wholeMatch(of: comment) != nil { continue }
            let match = try #require(line.wholeMatch(of: sample), "not Prometheus text: \(line)")
            samples[String(match.1)] = try #require(Double(match.2 == "+Inf" ? "inf" : String(match.2)), "not a number: \(line)")
        }
        return samples
    }

    @Test(.timeLimit(.minutes(10)))
    func dashboardAndMetricsOfASmokeSweepAgreeWithTheJournal() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = try harness.file("sweep.json", #"{"name":"dash","preset":"smoke","seeds":[1,2],"synflowIterations":[10],"synflowDensities":[0.1]}"#)
        let output = harness.directory.appendingPathComponent("coordinator.out")
        let process = try harness.start(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", try harness.cluster(workers: 1).path,
                                         "--dashboard", "127.0.0.1:0", "--keep-serving"], output: output)
        defer { StartedProcesses.stop(process) }
        func text() -> String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        var base = ""
        #expect(SweepHarness.wait(seconds: 60) {
            guard let match = text().firstMatch(of: #/dashboard: (http://127\.0\.0\.1:\d+/)/#) else { return false }
            base = String(match.1)
            return true
        }, "no dashboard address: \(text())")
        try #require(!base.isEmpty)

        // While the sweep runs: the page, self-contained and read-only, and its JSON.
        let page = try #require(Self.get(base))
        #expect(page.status == 200 && page.body.contains("<title>PruneSweep dashboard</title>"))
        #expect(!page.body.contains("src=\"http") && !page.body.contains("href=\"http") && !page.body.contains("@import"))
        let running = try #require(Self.get(base + "api/state"))
        #expect(running.status == 200, "\(running.body)")
        let first = try JSONDecoder().decode(DashboardSnapshot.self, from: Data(running.body.utf8))
        #expect(first.sweep == "dash" && first.tasks.total == 6, "\(first)")

        #expect(SweepHarness.wait(seconds: 200) { text().contains("the dashboard stays at") }, "the sweep did not finish: \(text())")
        let journal = try Journal(directory: harness.run)
        let rows = try journal.tasks()
        func count(_ state: Journal.State) -> Int { rows.filter { $0.state == state }.count }
        let state = try JSONDecoder().decode(DashboardSnapshot.self, from: Data(try #require(Self.get(base + "api/state")).body.utf8))
        #expect(state.tasks == .init(total: rows.count, queued: count(.queued), running: count(.running), done: count(.done), failed: count(.failed)))
        #expect(state.tasks.done == 6 && state.workers.map(\.name) == ["localhost-w1"], "\(state)")
        #expect(state.workers.first?.imagesPerSecond ?? 0 > 0, "\(state.workers)")
        let report = try #require(Self.get(base + "api/report"))
        #expect(report.body.contains("<svg") && report.body.contains("<table"), "\(report.body.prefix(500))")

        // /metrics: Prometheus text whose counters equal the journal's.
        let scrape = try #require(Self.get(base + "metrics"))
        #expect(scrape.status == 200)
        let metrics = try Self.prometheus(scrape.body)
        for taskState in [Journal.State.queued, .running, .done, .failed] {
            #expect(metrics["prunesweep_tasks{state=\"\(taskState.rawValue)\"}"] == Double(count(taskState)), "\(taskState): \(scrape.body)")
        }
        #expect(metrics["prunesweep_results_total"] == Double(try journal.eventCount("done")), "\(scrape.body)")
        // Backup copies (docs/cluster.md) are attempts too, but not retries.
        let retries = try journal.tasks().reduce(0) { sum, task in
            sum + max(0, try journal.attemptRecords(task.id).filter { $0.backupOf == nil }.count - 1)
        }
        #expect(metrics["prunesweep_retries_total"] == Double(retries), "\(scrape.body)")
        let lost = try journal.events("lost").filter { $0["silentSeconds"] != nil }.count
        #expect(metrics["prunesweep_lost_workers_total"] == Double(lost), "\(scrape.body)")
        #expect(metrics["prunesweep_rejected_frames_total"] == Double(try journal.occurrences("rejected-frame")), "\(scrape.body)")
        #expect(metrics["prunesweep_journal_commit_seconds_count"] ?? 0 > 0, "\(scrape.body)")
        // Every turn of the socket loop is timed; the longest is one of them, so no more than their sum.
        let turns = metrics["prunesweep_loop_turn_seconds_count"] ?? 0, longest = metrics["prunesweep_loop_turn_longest_seconds"] ?? 0
        #expect(turns > 0 && longest > 0 && longest <= metrics["prunesweep_loop_turn_seconds_sum"] ?? 0, "\(scrape.body)")
        #expect(metrics["prunesweep_artifact_bytes_total{direction=\"received\"}"] ?? 0 > 0, "\(scrape.body)")
        #expect(metrics["prunesweep_worker_images_per_second{worker=\"localhost-w1\"}"] ?? 0 > 0, "\(scrape.body)")
        #expect(metrics["prunesweep_worker_epoch_seconds{worker=\"localhost-w1\"}"] ?? 0 > 0, "\(scrape.body)")

        // The coordinator's JSON log: every line parses, and the worker's lines are in it under its name.
        let log = try String(contentsOf: harness.run.appendingPathComponent("logs/coordinator.jsonl"), encoding: .utf8)
        let entries = try log.split(separator: "\n").map { try LogEntry(jsonLine: String($0)) }
        #expect(entries.contains { $0.source == "coordinator" && $0.message.contains("joined from") })
        #expect(entries.contains { $0.source == "localhost-w1" && $0.task?.hasPrefix("train synflow") == true && $0.message.hasPrefix("done ") },
                "no forwarded worker line: \(log.suffix(2000))")

        // `status --watch` on the finished sweep draws once and returns.
        let watch = try CoordinatorProcessTests.run(["status", harness.run.path, "--watch"])
        #expect(watch.status == 0 && watch.output.hasPrefix("\u{1B}[H\u{1B}[2J") && watch.output.contains("tasks: 6  done 6"), "\(watch.output)")
    }

    /// A coordinator serving on every interface (asked only through loopback): every path
    /// needs the token it printed. The server runs in a coordinator process, as in use: an
    /// in-process one would wait for the test runner's threads, which the other tests hold.
    @Test(.timeLimit(.minutes(10)))
    func offLoopbackEveryRequestNeedsTheToken() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let sweep = try harness.file("sweep.json", #"{"name":"token","preset":"smoke","seeds":[1],"baselines":["random"],"baselineDensities":[0.2]}"#)
        let output = harness.directory.appendingPathComponent("coordinator.out")
        let process = try harness.start(["--sweep", sweep.path, "--run-dir", harness.run.path, "--cluster", try harness.cluster(workers: 1).path,
                                         "--dashboard", "0.0.0.0:0", "--keep-serving"], output: output)
        defer { StartedProcesses.stop(process) }
        func text() -> String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        var port = "", token = ""
        #expect(SweepHarness.wait(seconds: 60) {
            guard let address = text().firstMatch(of: #/dashboard: http://[^/\s]+:(\d+)/#),
                  let printed = text().firstMatch(of: #/dashboard token: (\S+)/#) else { return false }
            (port, token) = (String(address.1), String(printed.1))
            return true
        }, "no dashboard address and token: \(text())")
        try #require(!port.isEmpty && !token.isEmpty)
        let base = "http://127.0.0.1:\(port)/"
        let wrong = (token.first == "0" ? "1" : "0") + token.dropFirst()
        for path in ["", "api/state", "api/report", "metrics"] {
            #expect(Self.get(base + path)?.status == 401, "\(path) without the token")
            #expect(Self.get(base + path + "?token=\(wrong)")?.status == 401, "\(path) with a wrong token")
            #expect(Self.get(base + path + "?token=\(token)")?.status == 200, "\(path) with ?token=")
            #expect(Self.get(base + path, bearer: token)?.status == 200, "\(path) with Authorization: Bearer")
        }
        #expect(throws: DashboardError.self) { try DashboardAddress("8080") }
        #expect(try DashboardAddress("[::1]:9090") == DashboardAddress("[::1]:9090") && DashboardAddress("[::1]:9090").isLoopback)
    }
}
