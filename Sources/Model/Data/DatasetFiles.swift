import Foundation

/// The files each dataset is read from, so a coordinator can check them before a sweep and
/// ship them to workers that do not have them.
extension TrainingConfig.Dataset {
    /// The file names in the dataset's directory (none for the generated set).
    public var fileNames: [String] {
        switch self {
        case .cifar10: (1...5).map { "data_batch_\($0).bin" } + ["test_batch.bin"]
        case .fashionMNIST: ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        case .synthetic: []
        }
    }

    /// Where the dataset is read from when no directory is given (CIFAR-10 has no default).
    public var defaultDirectory: URL? {
        self == .fashionMNIST ? FashionMNIST.defaultDirectory : nil
    }

    /// Each file's path in `directory` (or the default directory), every one checked to exist;
    /// the error names the first missing file and how to provide it.
    public func files(in directory: URL?) throws(ModelError) -> [(name: String, url: URL)] {
        guard !fileNames.isEmpty else { return [] }
        guard let base = directory ?? defaultDirectory else {
            throw .invalidConfiguration("dataset \(rawValue) has no default directory: pass --data-dir naming the directory with \(fileNames.joined(separator: ", "))")
        }
        return try fileNames.map { (name) throws(ModelError) in
            let url = base.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                let hint = self == .fashionMNIST ? "apt-get install -y dataset-fashion-mnist, or pass --data-dir" : "pass --data-dir naming the directory of the binary version"
                throw .invalidData("dataset \(rawValue): \(url.path) is missing (\(hint))")
            }
            return (name, url)
        }
    }
}
