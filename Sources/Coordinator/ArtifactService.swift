import Foundation
import Protocol
import TaskRuntime

/// The coordinator's artifacts on the wire: serves them to workers in chunks and assembles
/// and stores the workers' uploads (checkpoints and outputs, hash-checked). Reading and
/// storing files runs on the `FileWork` thread; chunk bookkeeping and answers stay on the
/// socket thread, which calls every method.
final class ArtifactService: @unchecked Sendable {
    /// What became of an upload's chunk.
    enum Upload: Equatable {
        /// More chunks are to come.
        case partial
        /// The artifact is whole and goes to the store (a failed hash check is reported there).
        case complete
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

    /// The service of `store`, reading and writing files on `files`.
    init(store: ArtifactStore, files: FileWork) {
        self.store = store
        self.files = files
    }

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
        files.run({ try? store.data(request.hash) }) { [self] data in
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

    /// Adds an uploaded chunk from `peer`; a whole artifact is stored on the file thread, and
    /// `stored` hears the store's refusal (a hash that does not match), if any.
    func receive(_ chunk: ArtifactChunk, _ bytes: Data, from peer: Data, stored: @escaping @Sendable ((any Error)?) -> Void) -> Upload {
        let key = Self.key(peer, chunk.hash)
        var buffer = uploads[key] ?? Data()
        guard chunk.offset == buffer.count else {
            uploads[key] = nil
            return .outOfOrder(received: buffer.count)
        }
        buffer.append(bytes)
        guard buffer.count >= chunk.total else {
            uploads[key] = buffer
            return .partial
        }
        uploads[key] = nil
        let store = self.store, whole = buffer
        files.run({ () -> String? in
            do { _ = try store.put(whole, expected: chunk.hash); return nil } catch { return "\(error)" }
        }) { failure in stored(failure.map { SweepError.invalid($0) }) }
        return .complete
    }

    /// Drops what `peer` uploaded of `hash` so far (its upload was refused).
    func drop(_ hash: String, from peer: Data) { uploads[Self.key(peer, hash)] = nil }

    /// Whether the store holds `hash` (ask on the file thread, after pending uploads: `then`).
    func contains(_ hash: String, then: @escaping @Sendable (Bool) -> Void) {
        let store = self.store
        files.run({ store.contains(hash) }, then: then)
    }

    private static func key(_ peer: Data, _ hash: String) -> String { peer.base64EncodedString() + "/" + hash }
}
