import Foundation

/// The CIFAR-10 binary format: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`,
/// each 10,000 records of one label byte and 3,072 pixel bytes (red, green, blue planes).
public enum CIFAR10 {
    /// The study's normalisation.
    public static let mean: [Float] = [0.4914, 0.4822, 0.4465]
    /// The study's normalisation.
    public static let std: [Float] = [0.2470, 0.2435, 0.2616]
    /// Bytes per record: one label and a 3×32×32 image.
    public static let recordSize = 1 + 3 * 32 * 32

    /// The training files and the test file from `directory`.
    public static func load(from directory: URL) throws(ModelError) -> (train: ImageDataset, test: ImageDataset) {
        let trainFiles = (1...5).map { directory.appendingPathComponent("data_batch_\($0).bin") }
        return (try load(files: trainFiles, name: "cifar10/train"),
                try load(files: [directory.appendingPathComponent("test_batch.bin")], name: "cifar10/test"))
    }

    /// Reads and concatenates whole files of records; any missing or truncated file is an error
    /// that names it.
    public static func load(files: [URL], name: String) throws(ModelError) -> ImageDataset {
        var pixels: [UInt8] = []
        var labels: [Int32] = []
        for file in files {
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw .invalidData("CIFAR-10 file \(file.path) is missing; expected the binary version (data_batch_1..5.bin, test_batch.bin) in \(file.deletingLastPathComponent().path)")
            }
            let data: Data
            do { data = try Data(contentsOf: file) } catch {
                throw .invalidData("cannot read CIFAR-10 file \(file.path): \(error.localizedDescription)")
            }
            guard !data.isEmpty, data.count % recordSize == 0 else {
                throw .invalidData("CIFAR-10 file \(file.path) has \(data.count) bytes, not a whole number of \(recordSize)-byte records (truncated or not the binary version?)")
            }
            pixels.reserveCapacity(pixels.count + data.count)
            for record in stride(from: 0, to: data.count, by: recordSize) {
                let label = data[data.startIndex + record]
                guard label < 10 else { throw .invalidData("CIFAR-10 file \(file.path): record \(record / recordSize) has label \(label), expected 0–9") }
                labels.append(Int32(label))
                pixels += data[(data.startIndex + record + 1)..<(data.startIndex + record + recordSize)]
            }
        }
        return try ImageDataset(name: name, channels: 3, height: 32, width: 32, classes: 10,
                                pixels: pixels, labels: labels, mean: mean, std: std)
    }
}
