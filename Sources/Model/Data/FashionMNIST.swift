import CZlib
import Foundation

/// Fashion-MNIST in its IDX format, gzip-compressed as Debian's `dataset-fashion-mnist`
/// installs it: 60,000 training and 10,000 test images of 28×28 grey pixels.
public enum FashionMNIST {
    /// Where Debian's package installs the files.
    public static let defaultDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")
    /// The usual normalisation of the training set.
    public static let mean: [Float] = [0.2860]
    /// The usual normalisation of the training set.
    public static let std: [Float] = [0.3530]

    /// The training and test sets from `directory`.
    public static func load(from directory: URL = defaultDirectory) throws(ModelError) -> (train: ImageDataset, test: ImageDataset) {
        func part(_ prefix: String, _ name: String) throws(ModelError) -> ImageDataset {
            let imagesFile = directory.appendingPathComponent("\(prefix)-images-idx3-ubyte.gz")
            let labelsFile = directory.appendingPathComponent("\(prefix)-labels-idx1-ubyte.gz")
            let (imageDims, pixels) = try readIDX(imagesFile, magic: 0x0803)
            let (labelDims, labelBytes) = try readIDX(labelsFile, magic: 0x0801)
            guard imageDims.count == 3, labelDims.count == 1, imageDims[0] == labelDims[0] else {
                throw .invalidData("\(imagesFile.path) holds \(imageDims.first ?? 0) images but \(labelsFile.path) holds \(labelDims.first ?? 0) labels")
            }
            return try ImageDataset(name: name, channels: 1, height: imageDims[1], width: imageDims[2], classes: 10,
                                    pixels: pixels, labels: labelBytes.map { Int32($0) }, mean: mean, std: std)
        }
        return (try part("train", "fashion-mnist/train"), try part("t10k", "fashion-mnist/test"))
    }

    /// Reads a gzip-compressed IDX file: a big-endian magic number (`0x08` unsigned bytes, then
    /// the number of dimensions), the dimensions, then the bytes.
    static func readIDX(_ file: URL, magic: UInt32) throws(ModelError) -> ([Int], [UInt8]) {
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw .invalidData("Fashion-MNIST file \(file.path) is missing; install it with `apt-get install -y dataset-fashion-mnist` or pass --data-dir")
        }
        let bytes = try gunzip(file)
        func word(_ offset: Int) -> Int {
            (0..<4).reduce(0) { ($0 << 8) | Int(bytes[offset + $1]) }
        }
        guard bytes.count >= 8, UInt32(word(0)) == magic else {
            throw .invalidData("\(file.path) does not start with the IDX magic number 0x\(String(magic, radix: 16)) (wrong or corrupt file)")
        }
        let dimensions = Int(magic & 0xff)
        guard bytes.count >= 4 + 4 * dimensions else { throw .invalidData("\(file.path) is truncated inside its header") }
        let shape = (0..<dimensions).map { word(4 + 4 * $0) }
        let start = 4 + 4 * dimensions
        let expected = shape.reduce(1, *)
        guard bytes.count - start == expected else {
            throw .invalidData("\(file.path) should hold \(expected) bytes for shape \(shape) but holds \(bytes.count - start) (truncated?)")
        }
        return (shape, Array(bytes[start...]))
    }

    /// The decompressed contents of a gzip file.
    static func gunzip(_ file: URL) throws(ModelError) -> [UInt8] {
        guard let handle = gzopen(file.path, "rb") else { throw .invalidData("cannot open \(file.path) for reading") }
        defer { gzclose(handle) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let read = chunk.withUnsafeMutableBytes { gzread(handle, $0.baseAddress, UInt32($0.count)) }
            if read < 0 { throw .invalidData("\(file.path) is not a valid gzip file (corrupt or truncated)") }
            if read == 0 { break }
            result += chunk[0..<Int(read)]
        }
        return result
    }
}
