import CZeroMQ
import Foundation

/// The ZeroMQ authentication handler (ZAP, RFC 27) of this process: libzmq asks it about every
/// CURVE handshake on the process's sockets, and it allows exactly the listed public keys.
/// One thread owns its REP socket at `inproc://zeromq.zap.01`; each decision is reported.
public final class ZAPHandler: Sendable {
    private let stopping = Locked(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the handler; `onDecision` hears the peer address, its public key (Z85) and
    /// whether it was allowed.
    public init(authorized: Set<String>, onDecision: @escaping @Sendable (_ address: String, _ key: String, _ allowed: Bool) -> Void) throws {
        let started = DispatchSemaphore(value: 0)
        let failure = Locked<ZMQError?>(nil)
        let stopping = self.stopping, finished = self.finished
        let thread = Thread {
            defer { finished.signal() }
            let socket: ZMQSocket
            do {
                socket = try ZMQSocket(.rep)
                try socket.bind("inproc://zeromq.zap.01")
            } catch {
                failure.with { $0 = (error as? ZMQError) ?? ZMQError("ZAP handler") }
                started.signal()
                return
            }
            started.signal()
            while !stopping.with({ $0 }) {
                guard let (readable, _) = try? poll([socket], eventDescriptor: nil, milliseconds: 100), readable[0],
                      let request = try? socket.receive() else { continue }
                // Request: version, request id, domain, address, identity, mechanism, credentials…
                guard request.count >= 6 else { continue }
                let mechanism = String(decoding: request[5], as: UTF8.self)
                let address = String(decoding: request[3], as: UTF8.self)
                var key = ""
                if mechanism == "CURVE", request.count >= 7, request[6].count == 32 { key = Self.z85(request[6]) }
                let allowed = !key.isEmpty && authorized.contains(key)
                onDecision(address, key.isEmpty ? "(\(mechanism), no CURVE key)" : key, allowed)
                let reply = [request[0], request[1], Data((allowed ? "200" : "400").utf8),
                             Data((allowed ? "OK" : "public key not authorised").utf8), Data(key.utf8), Data()]
                _ = try? socket.send(reply, dontWait: false)
            }
            socket.close()
        }
        thread.name = "prunesweep-zap"
        thread.start()
        started.wait()
        if let error = failure.with({ $0 }) { throw error }
    }

    /// Stops the handler's thread.
    public func stop() {
        guard !stopping.with({ stopped in defer { stopped = true }; return stopped }) else { return }
        finished.wait()
    }

    static func z85(_ binary: Data) -> String {
        var text = [CChar](repeating: 0, count: binary.count * 5 / 4 + 1)
        binary.withUnsafeBytes { bytes in _ = zmq_z85_encode(&text, bytes.bindMemory(to: UInt8.self).baseAddress, binary.count) }
        return String(cString: text)
    }
}
