import CZeroMQ
import Foundation
import Synchronization

/// One OS thread that owns one ZeroMQ socket: it polls the socket and an eventfd, sends what
/// other threads queued, hands every received multipart message to `onMessage` (with its
/// sender's CURVE public key, where the socket authenticates peers), and calls
/// `onTick` at least every `tick` seconds (for heartbeats). libzmq sockets are not
/// thread-safe, so this is the only thread that touches the socket; training and
/// bookkeeping run elsewhere and talk to it through `send`.
public final class SocketLoop: Sendable {
    /// What the loop's thread shares with callers; boxed because `Mutex` and `Atomic` cannot be copied.
    private final class Shared: Sendable {
        let outbox = Mutex<[[Data]]>([])
        let stopping = Atomic<Bool>(false)
        let eventDescriptor: Int32
        let finished = DispatchSemaphore(value: 0)
        init(eventDescriptor: Int32) { self.eventDescriptor = eventDescriptor }
        // Closed only when nobody can wake the loop any more: a wake from another thread after
        // `stop` (a file job finishing) must not write into a descriptor that the process
        // has meanwhile reused for another file (the journal's, say).
        deinit { close(eventDescriptor) }

        func wake() {
            var one: UInt64 = 1
            _ = write(eventDescriptor, &one, 8)
        }
    }

    private let shared: Shared
    /// Messages handled per turn at most, before queued sends go out and the tick runs.
    static let messagesPerTurn = 256
    /// Seconds of a turn spent handling messages at most (the same bound in time: a turn of
    /// 256 results and uploads took 25–60 ms of the coordinator's socket thread, and no
    /// heartbeat or answer goes out during a turn).
    static let messageSeconds = 0.005
    /// The endpoint the socket bound or connected to (a bound `*` port resolved).
    public let endpoint: String

    /// Starts the loop. `setUp` creates and configures the socket on the loop's thread and
    /// returns it with its endpoint; a failure there is thrown from `init`. With
    /// `onHandshake`, the outcome of every security handshake on the socket is reported.
    /// `connect`, when given, is connected to once that report is in place: ZeroMQ does not
    /// retry a handshake refused for its security mechanism (a keyless client at a CURVE
    /// server), so a socket connected in `setUp` could lose its only event to the moment
    /// before the monitor started, and its owner would wait for an answer that never comes.
    /// `onTurn` hears each turn's seconds, from the poll's return to the end of `onTick`:
    /// the time the socket goes unread and unanswered, its owner's stall.
    public init(tick: Double = 0.05,
                setUp: @escaping @Sendable () throws -> (ZMQSocket, String),
                connect: String? = nil,
                onMessage: @escaping @Sendable (_ frames: [Data], _ senderKey: String?) -> Void,
                onTick: @escaping @Sendable () -> Void = {},
                onHandshake: (@Sendable (HandshakeEvent) -> Void)? = nil,
                onTurn: (@Sendable (_ seconds: Double) -> Void)? = nil) throws {
        let descriptor = eventfd(0, Int32(EFD_NONBLOCK))
        guard descriptor >= 0 else { throw ZMQError("eventfd") }
        let shared = Shared(eventDescriptor: descriptor)
        self.shared = shared
        let started = DispatchSemaphore(value: 0)
        let startResult = StartResult()
        let thread = Thread {
            let socket: ZMQSocket
            var monitor: ZMQSocket?
            do {
                let (created, endpoint) = try setUp()
                socket = created
                if onHandshake != nil { monitor = try socket.monitorHandshakes() }
                if let connect { try socket.connect(connect) }
                startResult.value.withLock { $0 = .success(endpoint) }
                started.signal()
            } catch {
                startResult.value.withLock { $0 = .failure(error) }
                started.signal()
                shared.finished.signal()
                return
            }
            let milliseconds = Swift.max(1, Int(tick * 1000))
            while !shared.stopping.load(ordering: .acquiring) {
                let polled = [socket] + (monitor.map { [$0] } ?? [])
                guard let (readable, event) = try? poll(polled, eventDescriptor: descriptor, milliseconds: milliseconds) else { break }
                let turnStart = DispatchTime.now().uptimeNanoseconds
                if event {
                    var counter: UInt64 = 0
                    _ = read(descriptor, &counter, 8)
                }
                for frames in shared.outbox.withLock({ queued in defer { queued.removeAll() }; return queued }) {
                    _ = try? socket.send(frames, dontWait: true)
                }
                if readable[0] {
                    // At most a turn's worth: peers that send faster than the loop handles must
                    // not keep it from sending what it queued (answers, heartbeats) and from
                    // its tick; what is left is still readable at the next poll.
                    var handled = 0
                    let until = turnStart + UInt64(Self.messageSeconds * 1e9)
                    while handled < Self.messagesPerTurn, DispatchTime.now().uptimeNanoseconds < until,
                          let received = try? socket.receiveMessage() {
                        onMessage(received.frames, received.userID)
                        handled += 1
                    }
                }
                if let monitor, let onHandshake, readable[1] {
                    while let frames = try? monitor.receive() {
                        if let event = HandshakeEvent(frames) { onHandshake(event) }
                    }
                }
                onTick()
                onTurn?(Double(DispatchTime.now().uptimeNanoseconds - turnStart) / 1e9)
            }
            // Queued messages (a last shutdown or result) still go out before the socket closes.
            for frames in shared.outbox.withLock({ $0 }) { _ = try? socket.send(frames, dontWait: true) }
            if let monitor {
                socket.stopMonitor()
                monitor.close()
            }
            socket.close()
            shared.finished.signal()
        }
        thread.name = "prunesweep-socket"
        thread.start()
        started.wait()
        switch startResult.value.withLock({ $0 }) {
        case .success(let endpoint): self.endpoint = endpoint
        case .failure(let error): throw error
        case nil: throw ZMQError("socket thread start")
        }
    }

    private final class StartResult: Sendable {
        let value = Mutex<Result<String, any Error>?>(nil)
    }

    /// Queues `frames` for sending from the loop's thread; callable from any thread.
    public func send(_ frames: [Data]) {
        shared.outbox.withLock { $0.append(frames) }
        shared.wake()
    }

    /// Makes the loop run a turn soon (its tick included); callable from any thread.
    public func wake() { shared.wake() }

    /// Stops the loop (after sending what is queued), closes the socket and waits for the thread.
    public func stop() {
        guard !shared.stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shared.wake()
        shared.finished.wait()
    }
}

/// The outcome of a security handshake with a peer, from a socket monitor.
public enum HandshakeEvent: Equatable, Sendable {
    /// The peer is in (its key was accepted).
    case succeeded
    /// The authentication handler refused the peer (with its ZAP status code, e.g. 400).
    case refused(status: UInt32)
    /// The peer spoke another security mechanism or a broken handshake (e.g. no CURVE keys).
    case protocolError(code: UInt32)
    /// The handshake failed otherwise (errno).
    case failed(errno: UInt32)

    /// Decodes a monitor message: [event (uint16) + value (uint32), little-endian][endpoint].
    init?(_ frames: [Data]) {
        guard let first = frames.first, first.count >= 6 else { return nil }
        let bytes = [UInt8](first)
        let event = UInt16(bytes[0]) | UInt16(bytes[1]) << 8
        let value = UInt32(bytes[2]) | UInt32(bytes[3]) << 8 | UInt32(bytes[4]) << 16 | UInt32(bytes[5]) << 24
        switch Int32(event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: self = .succeeded
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: self = .refused(status: value)
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: self = .protocolError(code: value)
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: self = .failed(errno: value)
        default: return nil
        }
    }
}
