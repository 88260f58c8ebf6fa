import Foundation
import Model

/// A sweep's dataset on the wire: the coordinator puts the preset's dataset files into its
/// artifact store at start (refusing to start when one is missing, naming it), and every task
/// assignment lists them by name and content hash. The worker slots of a host share one
/// store of dataset files beside their caches (`host-datasets`): the first slot that needs
/// a file fetches it while holding the store's lock, and the others wait and reuse it, so
/// a 16-slot GPU host fetches and stores the dataset once. Hosts need no dataset installed.
public enum DatasetShipment {
    /// The host's dataset store for a worker whose cache is `cache`: beside it, shared by
    /// every slot whose cache has the same parent (`~/.cache/prunesweep/host-datasets`, or
    /// `RUN/workers/host-datasets` for workers the coordinator starts on its own machine).
    public static func hostStore(beside cache: URL) throws -> ArtifactStore {
        try ArtifactStore(runDirectory: cache.deletingLastPathComponent().appendingPathComponent("host-datasets"))
    }

    /// Runs `body` while holding the host store's lock, so only one slot at a time fetches
    /// what the store lacks.
    public static func whileHoldingLock<T>(of store: ArtifactStore, _ body: () throws -> T) throws -> T {
        try FileLock.withLock(store.root.deletingLastPathComponent().appendingPathComponent("fetch.lock"), body)
    }

    /// Stores the files of `dataset` from `directory` (or its default directory) and returns
    /// their hashes by file name; empty for the generated dataset.
    public static func stage(_ dataset: TrainingConfig.Dataset, from directory: URL?, into store: ArtifactStore) throws -> [String: String] {
        var hashes: [String: String] = [:]
        for file in try dataset.files(in: directory) { hashes[file.name] = try store.put(file: file.url) }
        return hashes
    }

    /// The directory a worker trains from: `cache/datasets/KEY/NAME` links to the stored files
    /// (`file(hash)` gives their paths), KEY naming this set of files so another set never mixes in.
    public static func directory(for files: [String: String], in cache: URL, file: (String) -> URL) throws -> URL {
        let key = ArtifactStore.hash(Data(files.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n").utf8))
        let directory = cache.appendingPathComponent("datasets").appendingPathComponent(String(key.prefix(16)))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, hash) in files {
            let link = directory.appendingPathComponent(name)
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: link.path)) == file(hash).path { continue }
            try? FileManager.default.removeItem(at: link)
            try FileManager.default.createSymbolicLink(at: link, withDestinationURL: file(hash))
        }
        return directory
    }
}
