/// The version recorded with every result.
public enum CodeVersion {
    /// The package's version string.
    public static let current = "0.1.0"
}
