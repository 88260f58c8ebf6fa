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

    /// Two slots of one host train at once: one fetches the dataset into the host's store, the
    /// other waits for it, and both train from links into that one copy.
    @Test(.timeLimit(.minutes(10)))
    func workersFetchTheDatasetFromTheCoordinatorOncePerHost() throws {
        guard FileManager.default.fileExists(atPath: Self.fashionMNIST.appendingPathComponent("t10k-images-idx3-ubyte.gz").path) else {
            return print("skipped: Fashion-MNIST is not installed (apt-get install -y dataset-fashion-mnist)")
        }
        let harness = try SweepHarness()
        defer { harness.remove() }
        let data = try Self.linkedFashionMNIST(in: harness.directory)
        let sweep = try harness.file("sweep.json", """
            {"name": "data", "preset": "smoke", "seeds": [1, 2], "dense": true,
             "overrides": {"dataset": "fashion-mnist", "width": 2, "epochs": 1, "trainLimit": 128, "testLimit": 64, "validationSize": 32}}
            """)
        let result = try CoordinatorProcessTests.run(["--sweep", sweep.path, "--run-dir", harness.run.path, "--data-dir", data.path,
                                                      "--cluster", try harness.cluster(workers: 2).path])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.contains("dataset fashion-mnist: 4 files"), "\(result.output)")
        let workers = ["localhost-w1", "localhost-w2"]
        let logs = try workers.map { try String(contentsOf: harness.run.appendingPathComponent("logs/\($0).log"), encoding: .utf8) }
        let fetches = logs.map { $0.components(separatedBy: "fetched the dataset from the coordinator: 4 file(s)").count - 1 }
        #expect(fetches.reduce(0, +) == 1, "one fetch for the host, got \(fetches): \(logs.joined(separator: "\n"))")

        // Both slots trained from the host's one copy: their links point into its store.
        let store = harness.run.appendingPathComponent("workers/host-datasets").path
        for worker in workers {
            let datasets = harness.run.appendingPathComponent("workers/\(worker)/datasets")
            let sets = try FileManager.default.contentsOfDirectory(atPath: datasets.path)
            #expect(sets.count == 1, "\(worker): \(sets)")
            for name in TrainingConfig.Dataset.fashionMNIST.fileNames {
                let link = datasets.appendingPathComponent(sets[0]).appendingPathComponent(name)
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
                #expect(target.hasPrefix(store), "\(worker): \(name) → \(target)")
                #expect(try Data(contentsOf: link) == Data(contentsOf: Self.fashionMNIST.appendingPathComponent(name)))
            }
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
