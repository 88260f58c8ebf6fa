import Crypto
import Foundation
import Model

/// Content-addressed files (weights, masks, checkpoints, metrics) in the run directory:
/// `artifacts/ab/abcdef…` named by the SHA-256 of their bytes. Writing is atomic and
/// idempotent; a file whose bytes do not match the expected hash is refused.
public struct ArtifactStore: Sendable {
    /// The store's root folder.
    public let root: URL
    /// `root`'s path: `contains` joins strings (a coordinator asks it per upload and
    /// checkpoint, and building a `URL` per question was most of its cost).
    private let rootPath: String

    /// The size of artifact chunks on the wire: small enough that a chunk never holds a
    /// socket thread long, large enough that a weights file is a few dozen messages.
    public static let chunkSize = 1 << 20

    /// A store under `runDirectory/artifacts`.
    public init(runDirectory: URL) throws {
        root = runDirectory.appendingPathComponent("artifacts")
        rootPath = root.path
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    /// The SHA-256 of `data` in hex.
    public static func hash(_ data: Data) -> String {
        SHA256.hash(data: data).hexDigits
    }

    /// Where the artifact `hash` lives (whether or not it is there yet).
    public func url(_ hash: String) -> URL {
        root.appendingPathComponent(String(hash.prefix(2))).appendingPathComponent(hash)
    }

    /// Whether the store holds `hash`.
    public func contains(_ hash: String) -> Bool { access("\(rootPath)/\(hash.prefix(2))/\(hash)", F_OK) == 0 }

    /// Stores `data` and returns its hash; with `expected`, refuses bytes that hash otherwise.
    @discardableResult
    public func put(_ data: Data, expected: String? = nil) throws -> String {
        let hash = Self.hash(data)
        if let expected, expected != hash {
            throw ArtifactError.hashMismatch(expected: expected, actual: hash)
        }
        guard !contains(hash) else { return hash }
        let target = url(hash)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(hash).\(UUID().uuidString)")
        try data.write(to: temporary)
        if rename(temporary.path, target.path) != 0 { try? FileManager.default.removeItem(at: temporary) }
        return hash
    }

    /// Stores a file's bytes and returns the hash.
    @discardableResult
    public func put(file: URL) throws -> String { try put(try Data(contentsOf: file)) }

    /// The bytes of `hash`, checked against it.
    public func data(_ hash: String) throws -> Data {
        let data: Data
        do { data = try Data(contentsOf: url(hash)) } catch { throw ArtifactError.missing(hash) }
        let actual = Self.hash(data)
        guard actual == hash else { throw ArtifactError.hashMismatch(expected: hash, actual: actual) }
        return data
    }
}

/// A missing or corrupt artifact.
public enum ArtifactError: Error, Equatable, CustomStringConvertible {
    /// Bytes whose SHA-256 is not the one they were sent or stored under.
    case hashMismatch(expected: String, actual: String)
    /// No artifact with this hash in the store.
    case missing(String)

    public var description: String {
        switch self {
        case .hashMismatch(let expected, let actual): "artifact hash mismatch: expected \(expected.prefix(16))…, got \(actual.prefix(16))…"
        case .missing(let hash): "artifact \(hash.prefix(16))… is not in the store"
        }
    }
}
