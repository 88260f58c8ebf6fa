import Foundation

/// The worker's half of a launched slot's secret (`SlotSecrets` on the coordinator): where a
/// worker process finds it, and how a fresh one is drawn.
public enum SlotSecret {
    /// The environment variable the worker reads its secret from.
    public static let environmentKey = "PRUNESWEEP_SLOT_SECRET"

    /// A worker process's secret for its `hello`: its slot's from the environment, else a
    /// fresh one of its own, so that its reconnects take over its session and nobody else can.
    public static func ofThisProcess() -> String { ProcessInfo.processInfo.environment[environmentKey] ?? random() }

    /// 32 random bytes, hex.
    public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
