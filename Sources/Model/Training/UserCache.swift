import Foundation

/// Where PruneSweep keeps what it may rebuild (the BLAS core choice, compiled kernels, a
/// worker's artifacts): `$XDG_CACHE_HOME/prunesweep`, else `$HOME/.cache/prunesweep`. HOME is
/// read from the environment because Foundation's home directory on Linux is the account's
/// password entry, so a worker started with another HOME (a fresh test home, a container)
/// would otherwise write into the account's own cache.
public enum UserCache {
    /// The `prunesweep` folder of the user's cache.
    public static var directory: URL {
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("prunesweep")
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser
        return home.appendingPathComponent(".cache/prunesweep")
    }

    /// The cache file `PREFIX-HASH.json` for a measurement that holds only while `key` does
    /// (the CPU model, library versions, thread count): a new key measures again.
    public static func file(_ prefix: String, key: [String]) -> URL {
        let digest = key.joined(separator: "|").utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
        return directory.appendingPathComponent("\(prefix)-\(String(digest, radix: 16)).json")
    }
}
