import Foundation
import Testing
@testable import Model

/// Dataset readers on generated files (CIFAR-10 cannot be downloaded here), the real
/// Fashion-MNIST when Debian's package is installed, and the batch assembler.
@Suite struct DataTests {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("prunesweep-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Writes CIFAR-10 binary files with `records` images each; record i of file f has label
    /// (f + i) % 10 and every pixel equal to (f · 7 + i) % 256.
    static func writeCIFAR(to directory: URL, records: Int) throws {
        for (index, name) in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"].enumerated() {
            var bytes: [UInt8] = []
            for i in 0..<records {
                bytes.append(UInt8((index + i) % 10))
                bytes += [UInt8](repeating: UInt8((index * 7 + i) % 256), count: 3072)
            }
            try Data(bytes).write(to: directory.appendingPathComponent(name + ".bin"))
        }
    }

    @Test func cifarBinaryFormat() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Self.writeCIFAR(to: directory, records: 20)
        let (train, test) = try CIFAR10.load(from: directory)
        #expect(train.count == 100 && test.count == 20)
        #expect(train.labels[21] == 2 && train.pixels[21 * 3072] == 8)
        #expect(test.labels[3] == 8 && test.pixels[3 * 3072 + 3071] == 38)
        let splits = try DataSplits(trainFiles: train, test: test, validationSize: 10)
        #expect(splits.train.count == 90 && splits.validation.count == 10)
        let again = try DataSplits(trainFiles: train, test: test, validationSize: 10)
        #expect(again.validation.labels == splits.validation.labels && again.validation.pixels == splits.validation.pixels)
    }

    @Test func cifarErrorsNameTheFile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Self.writeCIFAR(to: directory, records: 2)
        let truncated = directory.appendingPathComponent("data_batch_3.bin")
        try Data(try Data(contentsOf: truncated).prefix(5000)).write(to: truncated)
        #expect { try CIFAR10.load(from: directory) } throws: { error in
            "\(error)".contains("data_batch_3.bin") && "\(error)".contains("truncated")
        }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("test_batch.bin"))
        try Self.writeCIFAR(to: directory, records: 2)
        try FileManager.default.removeItem(at: directory.appendingPathComponent("data_batch_5.bin"))
        #expect { try CIFAR10.load(from: directory) } throws: { "\($0)".contains("data_batch_5.bin is missing") }
    }

    @Test func fashionMNISTErrorsNameTheFile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect { try FashionMNIST.load(from: directory) } throws: { "\($0)".contains("train-images-idx3-ubyte.gz is missing") }
        try Data("not gzip at all".utf8).write(to: directory.appendingPathComponent("train-images-idx3-ubyte.gz"))
        try Data("x".utf8).write(to: directory.appendingPathComponent("train-labels-idx1-ubyte.gz"))
        #expect { try FashionMNIST.load(from: directory) } throws: { "\($0)".contains("train-images-idx3-ubyte.gz") }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory.path)))
    func realFashionMNIST() throws {
        let (train, test) = try FashionMNIST.load()
        #expect(train.count == 60_000 && test.count == 10_000)
        #expect(train.height == 28 && train.width == 28 && train.channels == 1)
        #expect(Set(train.labels).count == 10)
        let mean = Double(train.pixels.prefix(28 * 28 * 1000).reduce(0) { $0 + Int($1) }) / Double(28 * 28 * 1000) / 255
        #expect(abs(mean - 0.286) < 0.02)
    }

    @Test func assemblerNormalisesCropsAndFlips() throws {
        let pixels: [UInt8] = (0..<(2 * 8 * 8)).map { UInt8($0 % 64 * 4) }
        let data = try ImageDataset(name: "tiny", channels: 1, height: 8, width: 8, classes: 2, pixels: pixels,
                                    labels: [0, 1], mean: [0.5], std: [0.25])
        let assembler = BatchAssembler()
        var none: RandomStream? = nil
        let plain = assembler.assemble(data, plan: BatchPlan(data, indices: [1, 0][...], random: &none))
        #expect(assembler.labels == [1, 0])
        #expect(plain.batch == 2 && plain.data[0] == (0 / 255 - 0.5) / 0.25)
        #expect(abs(plain.data[5] - (20 / 255 - 0.5) / 0.25) < 1e-6)
        var random: RandomStream? = RandomStream(seed: 3, stream: .augmentation)
        var padded = 0, flippedOrShifted = 0
        for _ in 0..<20 {
            let batch = assembler.assemble(data, plan: BatchPlan(data, indices: [0][...], random: &random))
            let values = Array(UnsafeBufferPointer(start: batch.data, count: 64))
            padded += values.filter { $0 == -2 }.count > 8 ? 1 : 0
            flippedOrShifted += abs(values[9] - plain.data[64 + 9]) > 1e-6 ? 1 : 0
        }
        #expect(padded > 0 && flippedOrShifted > 0)
    }
}
