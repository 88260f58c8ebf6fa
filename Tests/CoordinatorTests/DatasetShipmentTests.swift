import Foundation
import Model
import Testing
@testable import Coordinator

/// Datasets over the wire: the coordinator serves the preset's dataset files and refuses to
/// start without them; a worker fetches them once and trains from its cache.
@Suite struct DatasetShipmentTests {
    static let fashionMNIST = FashionMNIST.defaultDirectory

    /// A directory holding links to Debian's Fashion-MNIST files under other paths, so the
    /// worker cannot be reading the coordinator's copy by accident.
    static func linkedFashionMNIST(in directory: URL) throws -> URL {
        let data = directory.appendingPathComponent("coordinator-data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for name in TrainingConfig.Dataset.fashionMNIST.fileNames {
            try FileManager.default.createSymbolicLink(at: data.appendingPathComponent(name),
                                                       withDestinationURL: fashionMNIST.appendingPathComponent(name))
        }
        return data
    }

    @Test(.timeLimit(.minutes(10)))
    func workersFetchTheDatasetFromTheCoordinator() throws {
        guard FileManager.default.fileExists(atPath: Self.fashionMNIST.appendingPathComponent("t10k-images-idx3-ubyte.gz").path) else {
            return print("skipped: Fashion-MNIST is not installed (apt-get install -y dataset-fashion-mnist)")
        }
        let harness = try SweepHarness()
        defer { harness.remove() }
        let data = try Self.linkedFashionMNIST(in: harness.directory)
        let sweep = try harness.file("sweep.json", """
            {"name": "data", "preset": "smoke", "seeds": [1], "dense": true,
             "overrides": {"dataset": "fashion-mnist", "width": 2, "epochs": 1, "trainLimit": 128, "testLimit": 64, "validationSize": 32}}
            """)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--data-dir", data.path,
                                                      "--cluster", try harness.cluster(workers: 1).path])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.contains("dataset fashion-mnist: 4 files"), "\(result.output)")
        let workerLog = try String(contentsOf: harness.run.appendingPathComponent("logs/localhost-w1.log"), encoding: .utf8)
        #expect(workerLog.contains("fetched the dataset from the coordinator: 4 file(s)"), "\(workerLog)")

        // The worker trained from its own cache: the links point into its artifact store.
        let datasets = harness.run.appendingPathComponent("workers/localhost-w1/datasets")
        let sets = try FileManager.default.contentsOfDirectory(atPath: datasets.path)
        #expect(sets.count == 1)
        for name in TrainingConfig.Dataset.fashionMNIST.fileNames {
            let link = datasets.appendingPathComponent(sets[0]).appendingPathComponent(name)
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
            #expect(target.hasPrefix(harness.run.appendingPathComponent("workers/localhost-w1").path), "\(name) → \(target)")
            #expect(try Data(contentsOf: link) == Data(contentsOf: Self.fashionMNIST.appendingPathComponent(name)))
        }
    }

    @Test func aSweepWithoutItsDatasetDoesNotStart() throws {
        let harness = try SweepHarness()
        defer { harness.remove() }
        let missing = harness.directory.appendingPathComponent("no-data")
        let result = try CoordinatorProcessTests.run(["--sweep", "synflow-iters", "--run-dir", harness.run.path, "--data-dir", missing.path,
                                                      "--cluster", try harness.cluster(workers: 1).path])
        #expect(result.status == 2)
        #expect(result.errors.contains(missing.appendingPathComponent("train-images-idx3-ubyte.gz").path), "\(result.errors)")
        #expect(!FileManager.default.fileExists(atPath: harness.run.path), "nothing is written")

        #expect(throws: ModelError.self) { try TrainingConfig.Dataset.cifar10.files(in: nil) }
        #expect(try TrainingConfig.Dataset.synthetic.files(in: nil).isEmpty)
    }
}
