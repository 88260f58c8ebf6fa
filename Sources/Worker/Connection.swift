import Foundation
import Protocol

/// The worker's link to the coordinator, as the Paranoid Pirate keeps it: a DEALER owned by
/// its own thread (so heartbeats go out while an epoch computes) and the coordinator's
/// liveness. When the coordinator falls silent for `missedHeartbeats` intervals the link
/// calls itself dead; the supervisor (`WorkerAgent`) then replaces it after a back-off.
final class Connection: Sendable {
    private let loop: SocketLoop
    private let liveness: Locked<Liveness>
    /// The loop again, for its own tick; cleared on close to break the cycle.
    private let owner: Locked<SocketLoop?>

    /// Connects to `options.endpoint` (the ROUTER gives each connection its own routing id;
    /// the worker's name travels in `hello`, where the coordinator checks it); every decoded message goes to
    /// `onMessage` on the socket's thread, undecodable ones are logged and dropped.
    init(options: WorkerOptions, onMessage: @escaping @Sendable (Message) -> Void,
         onHandshake: @escaping @Sendable (HandshakeEvent) -> Void, log: @escaping @Sendable (String) -> Void) throws {
        let liveness = Locked(Liveness(interval: options.heartbeatSeconds, allowedMisses: options.missedHeartbeats,
                                      now: Date().timeIntervalSince1970))
        self.liveness = liveness
        let endpoint = options.endpoint, curve = options.curve
        // The tick sends through the loop it runs on, which exists only once `init` returns.
        let owner = Locked<SocketLoop?>(nil)
        self.owner = owner
        loop = try SocketLoop(setUp: {
            let socket = try ZMQSocket(.dealer)
            if let curve { try socket.makeCurveClient(curve.keys, serverKey: curve.serverKey) }
            return (socket, endpoint)
        }, connect: endpoint, onMessage: { frames, _ in
            liveness.with { $0.heard(at: Date().timeIntervalSince1970) }
            do { onMessage(try Wire.decode(frames)) } catch { log("dropped a frame from the coordinator: \(error)") }
        }, onTick: {
            let now = Date().timeIntervalSince1970
            let due = liveness.with { state in
                guard state.heartbeatDue(at: now) else { return false }
                state.sent(at: now)
                return true
            }
            if due { owner.with { $0?.send(Wire.encode(.heartbeat)) } }
        }, onHandshake: onHandshake)
        owner.with { $0 = loop }
    }

    /// Queues a message for the coordinator.
    func send(_ message: Message) {
        liveness.with { $0.sent(at: Date().timeIntervalSince1970) }
        loop.send(Wire.encode(message))
    }

    /// The coordinator has been silent for longer than the liveness rule allows.
    var isDead: Bool { liveness.with { $0.isDead(at: Date().timeIntervalSince1970) } }

    /// Closes the socket (after sending what is queued).
    func close() {
        loop.stop()
        owner.with { $0 = nil }
    }
}
