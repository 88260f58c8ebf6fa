import Coordinator
import Foundation
import Hummingbird
import Logging
import NIOCore
import Protocol

/// The coordinator's read-only HTTP side, served by Hummingbird while the sweep runs: the live
/// page at `/`, its JSON at `/api/state`, the report's tables and figures at `/api/report`, and
/// `/metrics` in Prometheus' format. On loopback anyone on this machine may read it; on any
/// other address every request needs the random token made at start (`token`).
public final class DashboardServer: Sendable {
    /// The address to open in a browser (with `?token=` when one is needed).
    public let url: String
    /// The token required off loopback (nil on loopback).
    public let token: String?
    /// The port it listens on (the free one chosen when asked for port 0).
    public let port: Int
    private let serving: Task<Void, Never>

    /// Starts serving `sweep`'s run in `runDirectory` on `address`: the journal for counts and
    /// the report, `live` for workers and failures, `metrics` for `/metrics`. Returns once it
    /// listens, or throws why it cannot.
    public init(address: DashboardAddress, journal: Journal, sweep: SweepSpec, runDirectory: URL,
                live: LiveSweepState, metrics: SweepMetrics, logger: Logger) throws(DashboardError) {
        let token = address.isLoopback ? nil : DashboardAccess<BasicRequestContext>.makeToken()
        let started = Date()
        let doneAtStart = (try? journal.stateCounts()[.done]) ?? 0
        let report = ReportFragment(journal: journal, sweep: sweep, runDirectory: runDirectory)
        let router = Router()
        router.add(middleware: DashboardAccess(token: token))
        router.get("/") { _, _ in DashboardServer.response(DashboardPage.html, type: "text/html; charset=utf-8") }
        router.get("/api/state") { _, _ in
            let snapshot = try DashboardSnapshot.now(journal: journal, sweep: sweep, runDirectory: runDirectory, live: live,
                                                     started: started, doneAtStart: doneAtStart)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return DashboardServer.response(String(decoding: try encoder.encode(snapshot), as: UTF8.self), type: "application/json")
        }
        router.get("/api/report") { _, _ in DashboardServer.response(try report.html(), type: "text/html; charset=utf-8") }
        router.get("/metrics") { _, _ in
            DashboardServer.response(try metrics.exposition(journal: journal), type: "text/plain; version=0.0.4; charset=utf-8")
        }
        // The outcome of binding, told by whichever comes first: the server running, or failing.
        let bound = Locked<Result<Int, DashboardError>?>(nil)
        let signal = DispatchSemaphore(value: 0)
        var quiet = logger
        // Hummingbird reports its own stop (a cancellation) as an error; a failure to bind is thrown to us.
        quiet.logLevel = .critical
        let description = address.description
        let app = Application(router: router, configuration: .init(address: .hostname(address.host, port: address.port), serverName: "prunesweep"),
                              onServerRunning: { channel in
                                  bound.with { $0 = .success(channel.localAddress?.port ?? address.port) }
                                  signal.signal()
                              }, logger: quiet)
        let serving = Task {
            do { try await app.run() } catch {
                bound.with { if $0 == nil { $0 = .failure(.cannotListen(description, detail: "\(error)")) } }
                signal.signal()
            }
        }
        guard signal.wait(timeout: .now() + 30) == .success, let outcome = bound.with({ $0 }) else {
            serving.cancel()
            throw .cannotListen(description, detail: "it did not start within 30 s")
        }
        switch outcome {
        case .success(let port):
            self.port = port
        case .failure(let error):
            throw error
        }
        self.serving = serving
        self.token = token
        let shownHost = address.host == "0.0.0.0" || address.host == "::" ? ProcessInfo.processInfo.hostName : address.host
        let hostPart = shownHost.contains(":") ? "[\(shownHost)]" : shownHost
        url = "http://\(hostPart):\(port)/" + (token.map { "?token=\($0)" } ?? "")
    }

    /// Stops serving (requests in flight are cut).
    public func stop() { serving.cancel() }

    private static func response(_ body: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-store"], body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
