import Foundation
import Protocol

/// Simulated workers of one process on one thread: one DEALER per worker to the coordinator's
/// endpoint, all polled together, each driven by its `SimulatedWorker`. Runs until every
/// worker is told to stop (or its fault ended it) or `shouldStop` says so.
public struct FleetSimulator {
    /// How the fleet is made.
    public struct Options: Sendable {
        /// The coordinator's endpoint.
        public var endpoint: String
        /// Workers in this process, and the prefix of their names (`PREFIX-INDEX`).
        public var workers: Int, namePrefix: String
        /// The cluster's liveness settings (cluster.json `heartbeatSeconds`, `missedHeartbeats`).
        public var heartbeatSeconds: Double, missedHeartbeats: Int
        /// Step time relative to the template's real one, and the log-normal spread (σ of its log).
        public var timeScale: Double, spread: Double
        /// The faults to act out.
        public var faults: FleetFaults

        /// Options for `workers` workers named `namePrefix-N` against `endpoint`.
        public init(endpoint: String, workers: Int, namePrefix: String = "sim", heartbeatSeconds: Double = 2.5, missedHeartbeats: Int = 3,
                    timeScale: Double = 1, spread: Double = 0.3, faults: FleetFaults = FleetFaults()) {
            self.endpoint = endpoint
            self.workers = workers
            self.namePrefix = namePrefix
            self.heartbeatSeconds = heartbeatSeconds
            self.missedHeartbeats = missedHeartbeats
            self.timeScale = timeScale
            self.spread = spread
            self.faults = faults
        }
    }

    private let options: Options
    private let template: FleetTemplate

    /// A fleet of `options` returning the outputs of `template`.
    public init(options: Options, template: FleetTemplate) {
        self.options = options
        self.template = template
    }

    /// Runs the fleet; returns what its workers measured.
    public func run(shouldStop: () -> Bool = { false }) throws -> FleetStats {
        let begin = Self.now()
        var workers = (0..<options.workers).map { index in
            SimulatedWorker(name: "\(options.namePrefix)-\(index)", template: template, heartbeat: options.heartbeatSeconds,
                            missedHeartbeats: options.missedHeartbeats, timeScale: options.timeScale, spread: options.spread,
                            fault: options.faults.fault(kind: Double.random(in: 0..<1), time: Double.random(in: 0..<1)), now: begin)
        }
        var sockets: [ZMQSocket?] = try workers.indices.map { _ in try connect() }
        for index in workers.indices { try carry(out: workers[index].introduce(now: begin), index, &sockets) }
        var stats = FleetStats(), lastTurn = Self.now()
        while !shouldStop() && workers.contains(where: { !$0.isFinished }) {
            let open = sockets.indices.filter { sockets[$0] != nil }
            let (readable, _) = try poll(open.map { sockets[$0]! }, eventDescriptor: nil, milliseconds: 10)
            let time = Self.now()
            stats.longestTurn = max(stats.longestTurn, time - lastTurn)
            lastTurn = time
            for (position, index) in open.enumerated() where readable[position] {
                while let socket = sockets[index], let frames = try socket.receive() {
                    guard let message = try? Wire.decode(frames) else { continue }
                    try carry(out: workers[index].receive(message, now: Self.now()), index, &sockets)
                }
            }
            for index in workers.indices { try carry(out: workers[index].tick(now: Self.now()), index, &sockets) }
        }
        for index in workers.indices {
            sockets[index]?.close()
            stats.merge(workers[index].stats)
        }
        return stats
    }

    private func connect() throws -> ZMQSocket {
        let socket = try ZMQSocket(.dealer)
        try socket.connect(options.endpoint)
        return socket
    }

    private func carry(out actions: [SimulatedWorker.Action], _ index: Int, _ sockets: inout [ZMQSocket?]) throws {
        for action in actions {
            switch action {
            case .send(let message): _ = try sockets[index]?.send(Wire.encode(message), dontWait: true)
            case .reconnect:
                sockets[index]?.close()
                sockets[index] = try connect()
            case .close:
                sockets[index]?.close()
                sockets[index] = nil
            }
        }
    }

    private static func now() -> Double { Date().timeIntervalSince1970 }
}
