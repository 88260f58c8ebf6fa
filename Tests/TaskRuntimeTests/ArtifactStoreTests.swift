import Foundation
import Model
import TaskRuntime
import Testing

/// The content-addressed store that both the coordinator and the workers keep.
@Suite struct ArtifactStoreTests {
    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("artifact-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func bytesAreStoredUnderTheirSHA256AndReadBackChecked() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ArtifactStore(runDirectory: directory)
        let bytes = Data("θ0 of seed 42".utf8)
        let hash = try store.put(bytes)
        // The SHA-256 of these bytes, from `printf 'θ0 of seed 42' | sha256sum`.
        #expect(hash == "af9c727915c8433ae87a19c26e4cc2b3970442eda5ca920531578dfaeda6ba02")
        #expect(try store.put(bytes) == hash)
        #expect(try store.data(hash) == bytes)

        try Data("flipped".utf8).write(to: store.url(hash))
        #expect(throws: ArtifactError.self) { try store.data(hash) }
        #expect(throws: ArtifactError.missing(String(repeating: "0", count: 64))) { try store.data(String(repeating: "0", count: 64)) }
        #expect(throws: ArtifactError.self) { try store.put(bytes, expected: String(repeating: "f", count: 64)) }
    }

    @Test func aTasksIdentityIsItsStepAndInputsNotItsLabels() {
        let step = TaskSpec.Step.initialise(ResNet18.Architecture(width: 4), seed: 42)
        let labels = TaskSpec.Labels(method: "dense", options: "", seed: 42, round: 0, targetDensity: nil, reported: false)
        let task = TaskSpec(step: step, inputs: [:], labels: labels)
        var relabelled = labels
        relabelled.method = "synflow"
        #expect(TaskSpec(step: step, inputs: [:], labels: relabelled).id == task.id)
        #expect(TaskSpec(step: .initialise(ResNet18.Architecture(width: 4), seed: 43), inputs: [:], labels: labels).id != task.id)
        #expect(TaskSpec(step: step, inputs: ["initial": task.id], labels: labels).id != task.id)
    }

    @Test func aWorkersDatasetDirectoryLinksTheCachedFilesAndKeepsSetsApart() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ArtifactStore(runDirectory: directory)
        let images = try store.put(Data([1, 2, 3]))
        let labels = try store.put(Data([4, 5]))
        let cache = directory.appendingPathComponent("cache")
        let first = try DatasetShipment.directory(for: ["images": images, "labels": labels], in: cache) { store.url($0) }
        #expect(try Data(contentsOf: first.appendingPathComponent("images")) == Data([1, 2, 3]))
        #expect(try DatasetShipment.directory(for: ["labels": labels, "images": images], in: cache) { store.url($0) }.path == first.path)
        let other = try DatasetShipment.directory(for: ["images": labels], in: cache) { store.url($0) }
        #expect(other.path != first.path)
    }
}
