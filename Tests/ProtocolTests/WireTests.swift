import Foundation
import Synchronization
import Testing
@testable import Protocol

/// Framing, the liveness state machine, and real ROUTER/DEALER sockets on loopback.
@Suite struct WireTests {
    static let samples: [Message] = [
        .hello(Hello(worker: "w1", host: "h", cores: 2, threads: 1, blasCore: "Haswell", version: "0.1", running: ["abc"], gpu: "1")),
        .ready(Ready(credit: 1)),
        .task(TaskAssignment(taskID: "abc", attempt: 2, spec: "{\"step\":\"train\"}", inputs: ["weights": "f00d"])),
        .progress(Progress(taskID: "abc", attempt: 2, epoch: 3, epochs: 10, metrics: ["loss": 0.5], checkpoint: "beef")),
        .artifactGet(ArtifactRequest(hash: "beef", offset: 0, length: 1 << 20)),
        .artifactChunk(ArtifactChunk(hash: "beef", offset: 4, total: 10), Data([1, 2, 3])),
        .result(TaskResult(taskID: "abc", attempt: 2, outputs: ["weights": "cafe"], metrics: "{}")),
        .error(TaskFailure(taskID: "abc", attempt: 2, message: "boom")),
        .accepted(Accepted(taskID: "abc", attempt: 2, duplicate: true)),
        .cancel(Cancel(taskID: "abc", reason: "done elsewhere")),
        .heartbeat,
        .shutdown(Shutdown(reason: "sweep finished")),
        .shutdown(Shutdown(reason: "unknown worker", rejoin: true)),
    ]

    @Test func everyMessageRoundTrips() throws {
        for message in Self.samples {
            #expect(try Wire.decode(Wire.encode(message)) == message, "\(message.type)")
        }
    }

    @Test func badFramesAreRejectedWithAReason() {
        let good = Wire.encode(.ready(Ready(credit: 1)))
        let cases: [([Data], WireError)] = [
            ([], .tooFewFrames(0)),
            (Array(good.prefix(2)), .tooFewFrames(2)),
            ([Data("http/1.1".utf8)] + good.dropFirst(), .unknownProtocol("http/1.1")),
            ([Data("prunesweep/2".utf8)] + good.dropFirst(), .unsupportedVersion(2)),
            ([good[0], Data("dance".utf8), good[2]], .unknownType("dance")),
            (good + [Data([0])], .wrongPayload(type: "ready", frames: 1)),
        ]
        for (frames, expected) in cases {
            #expect(throws: expected) { try Wire.decode(frames) }
        }
        #expect { try Wire.decode([good[0], good[1], Data([0xff, 0x00])]) } throws: { error in
            if case WireError.malformedHeader(type: "ready", detail: _) = error { return true }
            return false
        }
        let chunk = Wire.encode(.artifactChunk(ArtifactChunk(hash: "x", offset: 8, total: 9), Data([1, 2])))
        #expect(throws: WireError.self) { try Wire.decode(chunk) }
    }

    @Test func livenessAndBackoff() {
        var liveness = Liveness(interval: 1, allowedMisses: 3, now: 0)
        #expect(!liveness.isDead(at: 2.9) && liveness.isDead(at: 3.1))
        liveness.heard(at: 2)
        #expect(!liveness.isDead(at: 4.9) && liveness.isDead(at: 5.1))
        #expect(!liveness.heartbeatDue(at: 0.5) && liveness.heartbeatDue(at: 1))
        liveness.sent(at: 1)
        #expect(!liveness.heartbeatDue(at: 1.5))
        var backoff = Backoff()
        #expect((0..<7).map { _ in backoff.next() } == [1, 2, 4, 8, 16, 32, 32])
        backoff.reset()
        #expect(backoff.next() == 1)
    }

    /// A keyless client at a CURVE server hears why: ZeroMQ ends such a connection after its one
    /// handshake and does not retry it, so that single event is all a worker gets (a worker
    /// that missed it once waited for the coordinator forever). The loop connects only once
    /// its monitor runs.
    @Test(.timeLimit(.minutes(10)))
    func aKeylessClientHearsTheCurveServerRefuseIt() throws {
        let keys = try CurveKeyPair.generate()
        let server = try SocketLoop(setUp: {
            let socket = try ZMQSocket(.router)
            try socket.makeCurveServer(keys)
            return (socket, try socket.bind("tcp://127.0.0.1:*"))
        }, onMessage: { _, _ in })
        defer { server.stop() }
        for _ in 0..<5 {
            let events = Mutex<[HandshakeEvent]>([])
            let client = try SocketLoop(setUp: { (try ZMQSocket(.dealer), server.endpoint) }, connect: server.endpoint,
                                        onMessage: { _, _ in }, onHandshake: { event in events.withLock { $0.append(event) } })
            let deadline = Date().addingTimeInterval(10)
            while events.withLock({ $0.isEmpty }) && Date() < deadline { usleep(5_000) }
            client.stop()
            let heard = events.withLock { $0 }
            #expect(heard.count == 1 && heard.allSatisfy { if case .protocolError = $0 { true } else { false } }, "\(heard)")
        }
    }

    /// A ROUTER bound on loopback and a DEALER, each owned by its own loop thread.
    @Test(.timeLimit(.minutes(10)))
    func routerAndDealerExchangeMessages() throws {
        let atRouter = Mutex<[[Data]]>([]), atDealer = Mutex<[[Data]]>([])
        let router = try SocketLoop(setUp: {
            let socket = try ZMQSocket(.router)
            try socket.set(ZMQSocket.routerMandatory, 1)
            return (socket, try socket.bind("tcp://127.0.0.1:*"))
        }, onMessage: { frames, _ in atRouter.withLock { $0.append(frames) } })
        defer { router.stop() }
        #expect(router.endpoint.hasPrefix("tcp://127.0.0.1:"))
        let endpoint = router.endpoint
        let dealer = try SocketLoop(setUp: {
            let socket = try ZMQSocket(.dealer)
            try socket.connect(endpoint)
            return (socket, endpoint)
        }, onMessage: { frames, _ in atDealer.withLock { $0.append(frames) } })
        defer { dealer.stop() }

        let hello = Message.hello(Hello(worker: "w", host: "localhost", cores: 2, threads: 1, blasCore: "x", version: "1"))
        dealer.send(Wire.encode(hello))
        let deadline = Date().addingTimeInterval(10)
        while atRouter.withLock({ $0.isEmpty }) && Date() < deadline { usleep(5_000) }
        let received = try #require(atRouter.withLock { $0.first })
        #expect(received.count == 4, "routing id + three frames")
        #expect(try Wire.decode(Array(received.dropFirst())) == hello)

        let big = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        router.send([received[0]] + Wire.encode(.artifactChunk(ArtifactChunk(hash: "h", offset: 0, total: big.count), big)))
        while atDealer.withLock({ $0.isEmpty }) && Date() < deadline { usleep(5_000) }
        let reply = try #require(atDealer.withLock { $0.first })
        #expect(try Wire.decode(reply) == .artifactChunk(ArtifactChunk(hash: "h", offset: 0, total: big.count), big))
    }
}
