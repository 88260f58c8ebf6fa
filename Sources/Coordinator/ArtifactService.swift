import Foundation
import Protocol
import TaskRuntime

/// The coordinator's artifacts on the wire: serves them to workers in chunks and assembles
/// and stores the workers' uploads (checkpoints and outputs, hash-checked). Reading and
/// storing files runs on the `FileWork` lanes (a worker's uploads on its own lane, in order);
/// chunk bookkeeping and answers stay on the socket thread, which calls every method. An
/// upload of a hash the store already holds is dropped chunk by chunk, neither kept nor
/// hashed again. The bytes of uploads held in memory (being assembled, or whole and waiting
/// for their lane) are counted: above `waitingBound` the server starts no more tasks, so
/// the workers' uploads slow down while the lanes catch up.
final class ArtifactService: @unchecked Sendable {
    /// What became of an upload's chunk.
    enum Upload: Equatable {
        /// More chunks are to come.
        case partial
        /// The artifact is whole and goes to the store (a failed hash check is reported there).
        case complete
        /// The store already holds the artifact: the chunk is dropped.
        case known
        /// The chunk does not continue what arrived (the partial artifact is dropped).
        case outOfOrder(received: Int)
    }

    private let store: ArtifactStore
    private let files: FileWork
    /// Artifacts lately served, newest first, checked against their hash once: workers fetch
    /// in 1 MiB chunks, often several files at once (a dataset's four or six), and re-reading
    /// and re-hashing a whole file per chunk would cost seconds per file.
    private var readCache: [(hash: String, data: Data)] = []
    /// What `readCache` may hold: a CIFAR-10 set (6 × 30 MB) and a few weights files.
    private static let readCacheBytes = 256 << 20
    /// Uploads in progress by peer and hash.
    private var uploads: [String: Data] = [:]
    /// Uploads of hashes the store held when they began, by peer and hash: bytes dropped so far.
    private var skipped: [String: Int] = [:]
    /// Bytes of uploads held in memory: partial ones, and whole ones not yet stored.
    private(set) var waitingBytes = 0
    /// Above this many waiting bytes the service is `full`.
    let waitingBound: Int
    /// Uploads dropped because the store already held their hash.
    private(set) var duplicateUploads = 0

    /// What `waitingBound` is by default: 256 MiB, a few hundred checkpoints of width 4 or
    /// five of width 64.
    static let defaultWaitingBound = 256 << 20

    /// The service of `store`, reading and writing files on `files`, full above `waitingBound` bytes.
    init(store: ArtifactStore, files: FileWork, waitingBound: Int = ArtifactService.defaultWaitingBound) {
        self.store = store
        self.files = files
        self.waitingBound = waitingBound
    }

    /// Whether uploads waiting in memory exceed the bound (start no more tasks until they do not).
    var isFull: Bool { waitingBytes > waitingBound }

    /// Answers `request` through `answer` (now when the artifact is cached, else once it is
    /// read): a chunk of it, or an empty chunk of total 0 when the store lacks it (`missing`
    /// hears of that).
    func serve(_ request: ArtifactRequest, answer: @escaping @Sendable (ArtifactChunk, Data) -> Void, missing: @escaping @Sendable () -> Void) {
        if let index = readCache.firstIndex(where: { $0.hash == request.hash }) {
            let data = readCache[index].data
            readCache.insert(readCache.remove(at: index), at: 0)
            return Self.answer(request, from: data, answer)
        }
        let store = self.store
        files.run(after: nil, { try? store.data(request.hash) }) { [self] data in
            guard let data else {
                missing()
                return answer(ArtifactChunk(hash: request.hash, offset: 0, total: 0), Data())
            }
            cache(request.hash, data)
            Self.answer(request, from: data, answer)
        }
    }

    private func cache(_ hash: String, _ data: Data) {
        guard !readCache.contains(where: { $0.hash == hash }) else { return }
        readCache.insert((hash, data), at: 0)
        var kept = 0
        readCache = Array(readCache.prefix { entry in
            kept += entry.data.count
            return kept <= Self.readCacheBytes || entry.hash == hash
        })
    }

    private static func answer(_ request: ArtifactRequest, from data: Data, _ answer: (ArtifactChunk, Data) -> Void) {
        let start = min(max(0, request.offset), data.count)
        let end = min(data.count, start + max(0, min(request.length, ArtifactStore.chunkSize)))
        answer(ArtifactChunk(hash: request.hash, offset: start, total: data.count), data.subdata(in: start..<end))
    }

    /// Adds an uploaded chunk from `peer`, the session of worker `lane` (whose file work keeps
    /// its order); a whole artifact is stored on that lane, and `stored` hears the store's
    /// refusal (a hash that does not match), if any. An upload whose hash the store holds
    /// when its first chunk arrives is dropped (`known`).
    func receive(_ chunk: ArtifactChunk, _ bytes: Data, from peer: Data, lane: String, stored: @escaping @Sendable ((any Error)?) -> Void) -> Upload {
        let key = Self.key(peer, chunk.hash)
        if chunk.offset == 0 && uploads[key] == nil && skipped[key] == nil && store.contains(chunk.hash) {
            duplicateUploads += 1
            skipped[key] = 0
        }
        if let dropped = skipped[key] {
            guard chunk.offset == dropped else {
                skipped[key] = nil
                return .outOfOrder(received: dropped)
            }
            skipped[key] = dropped + bytes.count >= chunk.total ? nil : dropped + bytes.count
            return .known
        }
        var buffer = uploads.removeValue(forKey: key) ?? Data()
        waitingBytes -= buffer.count
        guard chunk.offset == buffer.count else { return .outOfOrder(received: buffer.count) }
        buffer.append(bytes)
        waitingBytes += buffer.count
        guard buffer.count >= chunk.total else {
            uploads[key] = buffer
            return .partial
        }
        let store = self.store, whole = buffer
        files.run(after: lane, { () -> String? in
            do { _ = try store.put(whole, expected: chunk.hash); return nil } catch { return "\(error)" }
        }) { [self] failure in
            waitingBytes -= whole.count
            stored(failure.map { SweepError.invalid($0) })
        }
        return .complete
    }

    /// Drops what `peer` uploaded of `hash` so far (its upload was refused).
    func drop(_ hash: String, from peer: Data) {
        let key = Self.key(peer, hash)
        waitingBytes -= uploads.removeValue(forKey: key)?.count ?? 0
        skipped[key] = nil
    }

    /// Drops every partial upload of `peer` (its session ended).
    func dropAll(from peer: Data) {
        let prefix = peer.base64EncodedString() + "/"
        for key in uploads.keys where key.hasPrefix(prefix) { waitingBytes -= uploads.removeValue(forKey: key)?.count ?? 0 }
        for key in skipped.keys where key.hasPrefix(prefix) { skipped[key] = nil }
    }

    /// Whether the store holds `hash`, asked on `lane` after that worker's pending uploads (`then`).
    func contains(_ hash: String, after lane: String, then: @escaping @Sendable (Bool) -> Void) {
        let store = self.store
        files.run(after: lane, { store.contains(hash) }, then: then)
    }

    private static func key(_ peer: Data, _ hash: String) -> String { peer.base64EncodedString() + "/" + hash }
}
