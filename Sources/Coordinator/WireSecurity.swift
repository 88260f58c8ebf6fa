import Foundation
import Protocol
import TaskRuntime

/// The coordinator's CURVE material, loaded from the files cluster.json names: its key pair,
/// the worker keys let in, and the key handed to the workers it starts.
struct WireSecurity: Sendable {
    /// The coordinator's key pair.
    let coordinator: CurveKeyPair
    /// Public keys of the workers allowed in.
    let authorized: Set<String>
    /// Where the allowed keys come from, for the refusal log.
    let authorizedSource: String
    /// The secret key file of the workers the coordinator starts.
    let workerKeyFile: String?

    /// The material of `cluster`, or nil when its wire is not encrypted.
    init?(cluster: ClusterConfig) throws(SweepError) {
        guard cluster.usesCurve else { return nil }
        let security = cluster.security
        do {
            guard let coordinatorKey = security.coordinatorKey else { throw SweepError.invalid("field security.coordinatorKey is missing") }
            coordinator = try CurveKeyPair.read(secretFile: URL(fileURLWithPath: coordinatorKey))
            var keys = Set(try security.authorizedKeys.map { try CurveKeyPair.readKeys(URL(fileURLWithPath: $0)) } ?? [])
            if let workerKey = security.workerKey {
                keys.insert(try CurveKeyPair.read(secretFile: URL(fileURLWithPath: workerKey)).publicKey)
            }
            authorized = keys
            authorizedSource = [security.authorizedKeys, security.workerKey.map { "the key of \($0)" }].compactMap { $0 }.joined(separator: " and ")
            workerKeyFile = security.workerKey
        } catch let error as SweepError {
            throw error
        } catch {
            throw .invalid("cluster.json security: \(error)")
        }
    }
}
