import CZeroMQ
import Foundation

/// A CURVE key pair in Z85 text (40 characters each). Key files hold one key each:
/// `NAME.key` the secret (readable by its owner only), `NAME.pub` the public one.
public struct CurveKeyPair: Equatable, Sendable {
    /// The public key, shared with peers.
    public var publicKey: String
    /// The secret key, never sent anywhere.
    public var secretKey: String

    /// A new random key pair.
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41), secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError("zmq_curve_keypair (is libzmq built with CURVE?)") }
        return CurveKeyPair(publicKey: String(cString: publicKey), secretKey: String(cString: secretKey))
    }

    /// The pair of a secret key (the public key is derived from it).
    public init(secretKey: String) throws(ZMQError) {
        var publicKey = [CChar](repeating: 0, count: 41)
        guard secretKey.utf8.count == 40, zmq_curve_public(&publicKey, secretKey) == 0 else {
            throw ZMQError("a CURVE secret key is 40 Z85 characters; this one")
        }
        self.publicKey = String(cString: publicKey)
        self.secretKey = secretKey
    }

    private init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Writes `base.key` (mode 0600) and `base.pub`.
    public func write(to base: URL) throws {
        try FileManager.default.createDirectory(at: base.deletingLastPathComponent(), withIntermediateDirectories: true)
        let secret = base.appendingPathExtension("key")
        try Data((secretKey + "\n").utf8).write(to: secret, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secret.path)
        try Data((publicKey + "\n").utf8).write(to: base.appendingPathExtension("pub"), options: .atomic)
    }

    /// Reads the key pair of a secret key file.
    public static func read(secretFile url: URL) throws -> CurveKeyPair {
        try CurveKeyPair(secretKey: try firstKey(in: url))
    }

    /// The first key in a key file (a `.pub` or `.key` file: the key, then anything).
    public static func firstKey(in url: URL) throws -> String {
        guard let key = try readKeys(url).first else { throw CurveKeyError.empty(url.path) }
        return key
    }

    /// Every key of a file of public keys: one per line, the key first; `#` starts a comment.
    /// (`#` is a Z85 character, but no key begins with it: a key's first character encodes
    /// its first four bytes' top digit in base 85, at most 82, `%`.)
    public static func readKeys(_ url: URL) throws -> [String] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw CurveKeyError.unreadable(url.path) }
        return try text.split(whereSeparator: \.isNewline).compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
            let key = String(trimmed.prefix { !$0.isWhitespace })
            guard key.utf8.count == 40 else { throw CurveKeyError.malformed(url.path, key) }
            return key
        }
    }
}

/// A key file that cannot be used.
public enum CurveKeyError: Error, CustomStringConvertible {
    /// The file cannot be read.
    case unreadable(String)
    /// The file holds no key.
    case empty(String)
    /// A line's key is not 40 Z85 characters.
    case malformed(String, String)

    public var description: String {
        switch self {
        case .unreadable(let path): "cannot read key file \(path); create keys with `coordinator keygen --out DIR/NAME`"
        case .empty(let path): "key file \(path) holds no key"
        case .malformed(let path, let key): "key file \(path): \(key.prefix(12).debugDescription)… is not a 40-character Z85 CURVE key"
        }
    }
}
