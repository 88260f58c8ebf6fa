import Foundation

/// Why a multipart message was rejected. The coordinator counts and logs these and carries on.
public enum WireError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Fewer than the three frames every message has.
    case tooFewFrames(Int)
    /// The first frame is not "prunesweep/N".
    case unknownProtocol(String)
    /// A protocol version this build does not speak.
    case unsupportedVersion(Int)
    /// A type name this version does not know.
    case unknownType(String)
    /// The JSON header does not decode as the type's record.
    case malformedHeader(type: String, detail: String)
    /// Payload frames where the type has none, or none where it needs one.
    case wrongPayload(type: String, frames: Int)

    public var description: String {
        switch self {
        case .tooFewFrames(let count): "message has \(count) frame(s); every message has [protocol][type][header]"
        case .unknownProtocol(let tag): "first frame \(tag.debugDescription) is not \(Wire.tag)/VERSION"
        case .unsupportedVersion(let version): "protocol version \(version) is not supported (this build speaks \(Wire.version))"
        case .unknownType(let type): "unknown message type \(type.debugDescription)"
        case .malformedHeader(let type, let detail): "\(type) header does not decode: \(detail)"
        case .wrongPayload(let type, let frames): "\(type) message with \(frames) payload frame(s)"
        }
    }
}

/// The framing: `[prunesweep/VERSION][type][JSON header][payload…]` (see docs/protocol.md).
/// On the coordinator's ROUTER the peer's routing id precedes these frames.
public enum Wire {
    /// The protocol name in the first frame.
    public static let tag = "prunesweep"
    /// The protocol version this build speaks.
    public static let version = 1

    /// The frames of `message`.
    public static func encode(_ message: Message) -> [Data] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ value: T) -> Data { (try? encoder.encode(value)) ?? Data("{}".utf8) }
        var frames = [Data("\(tag)/\(version)".utf8), Data(message.type.utf8)]
        switch message {
        case .hello(let h): frames.append(json(h))
        case .ready(let h): frames.append(json(h))
        case .task(let h): frames.append(json(h))
        case .progress(let h): frames.append(json(h))
        case .artifactGet(let h): frames.append(json(h))
        case .artifactChunk(let h, let bytes): frames += [json(h), bytes]
        case .result(let h): frames.append(json(h))
        case .error(let h): frames.append(json(h))
        case .accepted(let h): frames.append(json(h))
        case .cancel(let h): frames.append(json(h))
        case .heartbeat: frames.append(Data("{}".utf8))
        case .shutdown(let h): frames.append(json(h))
        case .log(let h): frames.append(json(h))
        }
        return frames
    }

    /// The message in `frames`, or why they are not one.
    public static func decode(_ frames: [Data]) throws(WireError) -> Message {
        guard frames.count >= 3 else { throw .tooFewFrames(frames.count) }
        let first = String(decoding: frames[0], as: UTF8.self)
        let parts = first.split(separator: "/", maxSplits: 1)
        guard parts.count == 2, parts[0] == tag, let number = Int(parts[1]) else { throw .unknownProtocol(String(first.prefix(40))) }
        guard number == version else { throw .unsupportedVersion(number) }
        let type = String(decoding: frames[1], as: UTF8.self)
        let header = frames[2], payload = Array(frames.dropFirst(3))
        func decoded<T: Decodable>(_: T.Type) throws(WireError) -> T {
            do { return try JSONDecoder().decode(T.self, from: header) } catch {
                throw .malformedHeader(type: type, detail: String(describing: error).prefix(200).description)
            }
        }
        let expectsPayload = type == "artifact-chunk"
        guard payload.count == (expectsPayload ? 1 : 0) else { throw .wrongPayload(type: type, frames: payload.count) }
        switch type {
        case "hello": return .hello(try decoded(Hello.self))
        case "ready": return .ready(try decoded(Ready.self))
        case "task": return .task(try decoded(TaskAssignment.self))
        case "progress": return .progress(try decoded(Progress.self))
        case "artifact-get": return .artifactGet(try decoded(ArtifactRequest.self))
        case "artifact-chunk":
            let chunk = try decoded(ArtifactChunk.self)
            guard chunk.offset >= 0, chunk.offset + payload[0].count <= chunk.total else {
                throw .malformedHeader(type: type, detail: "chunk [\(chunk.offset), +\(payload[0].count)) exceeds total \(chunk.total)")
            }
            return .artifactChunk(chunk, payload[0])
        case "result": return .result(try decoded(TaskResult.self))
        case "error": return .error(try decoded(TaskFailure.self))
        case "accepted": return .accepted(try decoded(Accepted.self))
        case "cancel": return .cancel(try decoded(Cancel.self))
        case "heartbeat": return .heartbeat
        case "shutdown": return .shutdown(try decoded(Shutdown.self))
        case "log": return .log(try decoded(WorkerLogLine.self))
        default: throw .unknownType(String(type.prefix(40)))
        }
    }
}
