import Foundation

/// An exclusive lock on a file, shared by the processes of one host (`flock`): the worker
/// slots of a host use it so that one of them measures or fetches what all of them need while
/// the others wait for its answer. The kernel releases it when its holder dies.
public enum FileLock {
    /// Runs `body` while holding the lock on `url` (created when missing).
    public static func withLock<T>(_ url: URL, _ body: () throws -> T) throws -> T {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw ModelError.io("cannot open the lock file \(url.path): \(String(cString: strerror(errno))); is its directory writable?") }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ModelError.io("cannot lock \(url.path): \(String(cString: strerror(errno)))") }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }
}
