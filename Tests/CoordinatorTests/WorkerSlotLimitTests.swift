import Protocol
import Testing
@testable import Coordinator

/// The most tasks a worker may hold, whatever its hello claims (docs/cluster.md).
@Suite struct WorkerSlotLimitTests {
    static func hello(device: String? = nil, gpu: String? = nil, group: String? = nil) -> Hello {
        Hello(worker: "w", host: "h", cores: 1, threads: 1, blasCore: "none", version: "v", gpu: gpu, group: group,
              slots: 1_000_000_000, device: device)
    }

    @Test func launchedSlotsRunOneTaskAndOthersTheirGPUsTimesSlotsPerGPU() {
        let cluster = ClusterConfig(hosts: [ClusterConfig.Host(name: "gpu-box", launcher: .manual, workers: 4, gpus: ["0", "1"], slotsPerGPU: 2),
                                            ClusterConfig.Host(name: "cpu-box", launcher: .manual)])
        let limit = WorkerSlotLimit(cluster: cluster)
        let gpu = "NVIDIA H100 80GB HBM3, driver 12.8"
        #expect(limit.bound(for: Self.hello(device: gpu, gpu: "0,1", group: "gpu-box"), launched: true).slots == 1)
        #expect(limit.bound(for: Self.hello(), launched: false).slots == 1)
        #expect(limit.bound(for: Self.hello(device: "cpu", group: "gpu-box"), launched: false).slots == 1)
        // No host in cluster.json: one slot per GPU it names.
        #expect(limit.bound(for: Self.hello(device: gpu, gpu: "3"), launched: false).slots == 1)
        #expect(limit.bound(for: Self.hello(device: gpu), launched: false).slots == 1)
        #expect(limit.bound(for: Self.hello(device: gpu, gpu: "0", group: "gpu-box"), launched: false).slots == 2)
        #expect(limit.bound(for: Self.hello(device: gpu, gpu: "0,1", group: "gpu-box"), launched: false).slots == 4)
        // Its host lists 2 GPUs: naming 8 gets it no more than 2 × 2.
        #expect(limit.bound(for: Self.hello(device: gpu, gpu: "0,1,2,3,4,5,6,7", group: "gpu-box"), launched: false).slots == 4)
        let raised = WorkerSlotLimit(cluster: cluster, maximum: 3)
        #expect(raised.bound(for: Self.hello(), launched: false).slots == 3)
        #expect(raised.bound(for: Self.hello(), launched: false).source == "--max-worker-slots")
        #expect(raised.bound(for: Self.hello(), launched: true).slots == 1)
    }
}
