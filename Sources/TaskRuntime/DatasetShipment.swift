import Foundation
import Model

/// A sweep's dataset on the wire: the coordinator puts the preset's dataset files into its
/// artifact store at start (refusing to start when one is missing, naming it), and every task
/// assignment lists them by name and content hash. A worker fetches the ones it lacks once,
/// keeps them in its cache by hash, and trains from there: hosts need no dataset installed.
public enum DatasetShipment {
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
