/// Where a worker computes: its CPU or one CUDA device. The device belongs to the worker (a
/// command-line flag or its host's `cluster.json` entry); the precision belongs to the
/// experiment (`TrainingConfig.precision`).
public enum ComputeDevice: Sendable {
    case cpu
    case cuda(CUDADevice)

    /// What a user asked for: `auto`, `cpu`, `cuda` (device 0) or `cuda:N`.
    public enum Request: Equatable, Sendable, CustomStringConvertible {
        case auto, cpu, cuda(Int)

        /// Parses the `--device` syntax; nil for anything else.
        public init?(_ text: String) {
            switch text {
            case "auto": self = .auto
            case "cpu": self = .cpu
            case "cuda": self = .cuda(0)
            default:
                guard text.hasPrefix("cuda:"), let index = Int(text.dropFirst(5)), index >= 0 else { return nil }
                self = .cuda(index)
            }
        }

        public var description: String {
            switch self {
            case .auto: "auto"
            case .cpu: "cpu"
            case .cuda(let index): "cuda:\(index)"
            }
        }
    }

    /// Opens the requested device. `auto` takes CUDA device 0 when a driver, the libraries and
    /// a device are present and the CPU otherwise; the second value says why, for the log.
    /// An explicit `cuda` request that cannot be met is an error naming what is missing.
    public static func open(_ request: Request) throws(GPUError) -> (device: ComputeDevice, reason: String) {
        switch request {
        case .cpu:
            return (.cpu, "asked for")
        case .cuda(let index):
            return (.cuda(try CUDADevice(index: index)), "asked for")
        case .auto:
            do {
                return (.cuda(try CUDADevice(index: 0)), "auto: a CUDA driver and device are present")
            } catch {
                return (.cpu, "auto: no usable GPU, \(error)")
            }
        }
    }

    /// "cpu" or "cuda:0".
    public var name: String {
        switch self {
        case .cpu: "cpu"
        case .cuda(let device): "cuda:\(device.info.index)"
        }
    }

    /// The precision a run on this device uses when its configuration names none: TF32 on a
    /// GPU (PyTorch's default for cuDNN convolutions); the CPU always computes in fp32.
    public func effectivePrecision(_ requested: Precision?) -> Precision {
        switch self {
        case .cpu: .fp32
        case .cuda: requested ?? .tf32
        }
    }

    /// The engine that trains `network` on `data` with `config` on this device.
    public func makeEngine(network: ResNet18, data: DataSplits, config: TrainingConfig) throws(ModelError) -> TrainingEngine {
        switch self {
        case .cpu:
            return CPUEngine(network: network, data: data, config: config)
        case .cuda(let device):
            do {
                return try CUDAEngine(device: device, network: network, data: data, config: config,
                                      precision: effectivePrecision(config.precision))
            } catch {
                throw .device(error)
            }
        }
    }
}
