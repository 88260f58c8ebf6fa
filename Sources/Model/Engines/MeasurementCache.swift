import Foundation

/// An answer measured once per machine and kept in the user cache: the BLAS kernel family,
/// the GEMM routing, the sparse engine's per-layer verdicts.
///
/// Each decides which kernels compute a product, and so a run's bits; processes that timed
/// for themselves made two runs of one task differ (a worker's and an in-process run of one
/// sweep, a run and its resume). So every process on a host reads the same answer: it is
/// measured under a file lock, so processes starting together wait for one measurement and
/// read its answer, and it is kept even when the timings disagreed (a choice that stays put
/// beats one that wavers). The file's name carries what the answer holds only while it holds
/// (`UserCache.file`): CPU model, library builds, thread counts.
struct MeasurementCache<Value: Codable> {
    /// How the file is written.
    enum Format {
        /// One line, dates as seconds since 2001 (Foundation's default).
        case compact
        /// Indented with sorted keys and ISO 8601 dates, for people who read or edit it.
        case readable
    }

    /// The cache file.
    let url: URL
    let format: Format

    /// The cache file `PREFIX-HASH.json` for `key` (see `UserCache.file`).
    init(_ prefix: String, key: [String], format: Format = .compact) {
        self.init(url: UserCache.file(prefix, key: key), format: format)
    }

    /// The cache kept in `url`.
    init(url: URL, format: Format = .compact) {
        self.url = url
        self.format = format
    }

    /// The kept answer; nil when there is none or it cannot be read (written by another
    /// version of the program).
    func kept() -> Value? {
        let decoder = JSONDecoder()
        if format == .readable { decoder.dateDecodingStrategy = .iso8601 }
        return (try? Data(contentsOf: url)).flatMap { try? decoder.decode(Value.self, from: $0) }
    }

    /// The kept answer where `usable` accepts it; otherwise `measure(kept)` (given what the file
    /// holds, so a partial answer can be completed), which is kept for the next process. All
    /// under the file's lock. Where the lock cannot be taken (an unwritable cache directory),
    /// `measure(nil)` answers and nothing is kept.
    func answer<Failure: Error>(usable: (Value) -> Bool = { _ in true },
                                measure: (Value?) throws(Failure) -> Value) throws(Failure) -> Value {
        var failure: Failure?
        let locked = try? FileLock.withLock(lockURL) { () -> Value? in
            let current = kept()
            if let current, usable(current) { return current }
            do throws(Failure) {
                let value = try measure(current)
                keep(value)
                return value
            } catch {
                failure = error
                return nil
            }
        }
        if let failure { throw failure }
        if let value = locked ?? nil { return value }
        return try measure(nil)
    }

    /// Deletes the kept answer where `stale` says so, under the lock: an answer another process
    /// measured again meanwhile stays.
    func drop(where stale: (Value) -> Bool) {
        try? FileLock.withLock(lockURL) {
            if let current = kept(), stale(current) { try? FileManager.default.removeItem(at: url) }
        }
    }

    private var lockURL: URL { url.appendingPathExtension("lock") }

    private func keep(_ value: Value) {
        let encoder = JSONEncoder()
        if format == .readable {
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
        }
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? encoder.encode(value).write(to: url, options: .atomic)
    }
}
