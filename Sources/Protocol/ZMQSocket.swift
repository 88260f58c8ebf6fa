import CZeroMQ
import Foundation

/// A failed ZeroMQ call, with the call and libzmq's explanation.
public struct ZMQError: Error, CustomStringConvertible, Sendable {
    /// What was being done, e.g. "bind tcp://127.0.0.1:5555".
    public var operation: String
    /// libzmq's errno and its text.
    public var code: Int32, message: String

    init(_ operation: String) {
        self.operation = operation
        code = zmq_errno()
        message = String(cString: zmq_strerror(code))
    }

    public var description: String { "\(operation) failed: \(message) (errno \(code))" }
}

/// The process's one ZeroMQ context. Sockets of one context can talk over `inproc://`.
public final class ZMQContext: @unchecked Sendable {
    /// The shared context (libzmq contexts are thread-safe).
    public static let shared = ZMQContext()
    let handle: UnsafeMutableRawPointer

    private init() {
        // zmq_ctx_new fails only when the process is out of file descriptors or memory.
        guard let context = zmq_ctx_new() else { fatalError("zmq_ctx_new failed: \(ZMQError("zmq_ctx_new"))") }
        handle = context
    }
}

/// A ZeroMQ socket. Not thread-safe, like libzmq's: create, use and close it on one thread
/// (the owner of a `SocketLoop`). Frames are sent and received whole, as `Data`.
public final class ZMQSocket {
    /// The socket kinds the wire uses.
    public enum Kind: Int32, Sendable {
        /// The coordinator's side: routes by peer identity.
        case router = 6
        /// The worker's side: asynchronous, no request/reply lockstep.
        case dealer = 5
        /// The authentication handler's side of ZAP.
        case rep = 4
        /// The reading end of a socket monitor.
        case pair = 0
    }

    /// Option: a ROUTER send to an unknown peer fails instead of being dropped silently.
    public static let routerMandatory = ZMQ_ROUTER_MANDATORY
    /// Option: connections the kernel queues until the socket's I/O thread accepts them (the
    /// listen backlog; ZeroMQ's default is 100, and the kernel caps it at `net.core.somaxconn`).
    public static let backlog = ZMQ_BACKLOG

    let handle: UnsafeMutableRawPointer
    private var closed = false

    /// A new socket of `kind` with linger 0, so closing never blocks on unsent messages.
    public init(_ kind: Kind, context: ZMQContext = .shared) throws(ZMQError) {
        guard let socket = zmq_socket(context.handle, kind.rawValue) else { throw ZMQError("zmq_socket") }
        handle = socket
        try set(ZMQ_LINGER, 0)
    }

    deinit { close() }

    /// Closes the socket; further calls fail.
    public func close() {
        guard !closed else { return }
        closed = true
        zmq_close(handle)
    }

    /// Sets an integer option.
    public func set(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError("setsockopt \(option)") }
    }

    /// The value of integer `option`.
    public func get(_ option: Int32) throws(ZMQError) -> Int32 {
        var value: Int32 = 0, size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(handle, option, &value, &size) == 0 else { throw ZMQError("getsockopt \(option)") }
        return value
    }

    /// Makes this socket a CURVE server with `keys`: every peer must handshake with CURVE,
    /// and the process's ZAP handler decides which client keys are let in.
    public func makeCurveServer(_ keys: CurveKeyPair) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVER, 1)
        try set(ZMQ_CURVE_SECRETKEY, text: keys.secretKey)
        try set(ZMQ_ZAP_DOMAIN, text: "prunesweep")
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`.
    public func makeCurveClient(_ keys: CurveKeyPair, serverKey: String) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVERKEY, text: serverKey)
        try set(ZMQ_CURVE_PUBLICKEY, text: keys.publicKey)
        try set(ZMQ_CURVE_SECRETKEY, text: keys.secretKey)
    }

    /// Sets a text option; libzmq takes Z85 keys with their terminating zero.
    private func set(_ option: Int32, text: String) throws(ZMQError) {
        var bytes = Data(text.utf8)
        bytes.append(0)
        try set(option, bytes: bytes)
    }

    /// Starts a monitor of handshake outcomes and returns the PAIR socket that reads it.
    func monitorHandshakes() throws(ZMQError) -> ZMQSocket {
        let address = "inproc://prunesweep-monitor-\(UUID().uuidString)"
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
        guard zmq_socket_monitor(handle, address, events) == 0 else { throw ZMQError("zmq_socket_monitor") }
        let reader = try ZMQSocket(.pair)
        try reader.connect(address)
        return reader
    }

    /// Ends the monitor started by `monitorHandshakes`.
    func stopMonitor() { zmq_socket_monitor(handle, nil, 0) }

    /// Sets a bytes option (routing id).
    public func set(_ option: Int32, bytes: Data) throws(ZMQError) {
        let result = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, bytes.count) }
        guard result == 0 else { throw ZMQError("setsockopt \(option)") }
    }

    /// Binds to `endpoint` and returns the endpoint actually bound (a `*` port resolved).
    @discardableResult
    public func bind(_ endpoint: String) throws(ZMQError) -> String {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { throw ZMQError("getsockopt LAST_ENDPOINT") }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Connects to `endpoint` (ZeroMQ reconnects by itself when the peer comes and goes).
    public func connect(_ endpoint: String) throws(ZMQError) {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
    }

    /// Sends `frames` as one multipart message. Returns false when it would block (or, on a
    /// router with ZMQ_ROUTER_MANDATORY, when the peer is unknown) instead of throwing.
    @discardableResult
    public func send(_ frames: [Data], dontWait: Bool = true) throws(ZMQError) -> Bool {
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            let sent = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, frame.count, flags) }
            if sent < 0 {
                let error = ZMQError("send")
                if error.code == EAGAIN || error.code == EHOSTUNREACH { return false }
                throw error
            }
        }
        return true
    }

    /// Receives one whole multipart message without waiting; nil when none is queued.
    public func receive() throws(ZMQError) -> [Data]? { try receiveMessage()?.frames }

    /// Receives one whole multipart message without waiting, with the user id the
    /// authentication handler gave its sender (its CURVE public key; nil without CURVE);
    /// nil when none is queued.
    public func receiveMessage() throws(ZMQError) -> (frames: [Data], userID: String?)? {
        var frames: [Data] = []
        var userID: String?
        while true {
            // On the heap, so that a large frame's `Data` can own it (below).
            let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
            zmq_msg_init(message)
            var owned = false
            defer {
                if !owned {
                    zmq_msg_close(message)
                    message.deallocate()
                }
            }
            if zmq_msg_recv(message, handle, frames.isEmpty ? ZMQ_DONTWAIT : 0) < 0 {
                let error = ZMQError("receive")
                if error.code == EAGAIN && frames.isEmpty { return nil }
                throw error
            }
            // A ROUTER's routing-id frame may carry no metadata; the sender's frames do.
            if userID == nil, let property = zmq_msg_gets(message, "User-Id") { userID = String(cString: property) }
            let size = zmq_msg_size(message)
            if size >= Self.borrowedFrameBytes, let bytes = zmq_msg_data(message) {
                // A large frame (an artifact chunk) is not copied: the `Data` keeps ZeroMQ's
                // buffer and closes the message when it is freed (copying chunks of uploads
                // was a tenth of the coordinator's socket thread at 1,000 workers).
                owned = true
                frames.append(Data(bytesNoCopy: bytes, count: size, deallocator: .custom { _, _ in
                    zmq_msg_close(message)
                    message.deallocate()
                }))
            } else {
                frames.append(Data(bytes: zmq_msg_data(message), count: size))
            }
            if zmq_msg_more(message) == 0 { return (frames, userID.flatMap { $0.isEmpty ? nil : $0 }) }
        }
    }

    /// Frames from this size on keep ZeroMQ's buffer instead of being copied (smaller ones
    /// cost less to copy than to own).
    static let borrowedFrameBytes = 16 << 10
}

/// Waits until one of `sockets` has a message or `eventDescriptor` is readable, at most
/// `milliseconds`; returns which sockets are readable and whether the descriptor fired.
public func poll(_ sockets: [ZMQSocket], eventDescriptor: Int32?, milliseconds: Int) throws(ZMQError) -> (readable: [Bool], event: Bool) {
    var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
    if let eventDescriptor { items.append(zmq_pollitem_t(socket: nil, fd: eventDescriptor, events: Int16(ZMQ_POLLIN), revents: 0)) }
    if zmq_poll(&items, Int32(items.count), milliseconds) < 0 {
        let error = ZMQError("poll")
        if error.code == EINTR { return (sockets.map { _ in false }, false) }
        throw error
    }
    let readable = items.prefix(sockets.count).map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    let event = eventDescriptor != nil && (items.last.map { $0.revents & Int16(ZMQ_POLLIN) != 0 } ?? false)
    return (readable, event)
}
