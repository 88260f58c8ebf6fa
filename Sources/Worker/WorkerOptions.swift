import Foundation
import Model
import Protocol

/// How a worker joins a sweep.
public struct WorkerOptions: Sendable {
    /// The coordinator's endpoint, e.g. `tcp://10.0.0.1:5555`.
    public var endpoint: String
    /// The worker's name (unique in the sweep; a restarted worker keeps it).
    public var name: String
    /// Compute threads.
    public var threads: Int
    /// Heartbeat interval and misses before the coordinator counts as lost.
    public var heartbeatSeconds: Double, missedHeartbeats: Int
    /// The artifact cache and scratch space.
    public var cache: URL
    /// Exit when the process that started this one exits (locally launched workers).
    public var exitWithParent: Bool
    /// The cluster.json host this worker was started for.
    public var group: String?
    /// CURVE: this worker's key pair and the coordinator's public key (nil: plain TCP).
    public var curve: (keys: CurveKeyPair, serverKey: String)?
    /// Where training steps run, and the device's description for `hello`.
    public var device: ComputeDevice, deviceDescription: String

    /// Worker options.
    public init(endpoint: String, name: String, threads: Int, heartbeatSeconds: Double = 2.5, missedHeartbeats: Int = 3,
                cache: URL, exitWithParent: Bool = false, group: String? = nil, curve: (keys: CurveKeyPair, serverKey: String)? = nil,
                device: ComputeDevice = .cpu, deviceDescription: String = "cpu") {
        self.device = device
        self.deviceDescription = deviceDescription
        self.group = group
        self.curve = curve
        self.endpoint = endpoint
        self.name = name
        self.threads = threads
        self.heartbeatSeconds = heartbeatSeconds
        self.missedHeartbeats = missedHeartbeats
        self.cache = cache
        self.exitWithParent = exitWithParent
    }

    /// Seconds of silence after which the coordinator counts as lost.
    public var deadAfterSeconds: Double { heartbeatSeconds * Double(missedHeartbeats) }
}
