/// Everything that can go wrong when loading data, checkpoints or configurations. Each case
/// carries a message that names the offending file or field and says what to do about it.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// A data file is missing, truncated or not in the expected format.
    case invalidData(String)
    /// A checkpoint or safetensors file cannot be used.
    case invalidCheckpoint(String)
    /// A configuration field has a value that cannot work.
    case invalidConfiguration(String)
    /// Reading or writing a file failed.
    case io(String)
    /// The compute device (a GPU, its driver or libraries) failed or is missing.
    case device(GPUError)

    public var description: String {
        switch self {
        case .invalidData(let message): "invalid data: \(message)"
        case .invalidCheckpoint(let message): "invalid checkpoint: \(message)"
        case .invalidConfiguration(let message): "invalid configuration: \(message)"
        case .io(let message): "I/O error: \(message)"
        case .device(let error): "device: \(error)"
        }
    }
}
