/// Why the dashboard cannot start.
public enum DashboardError: Error, CustomStringConvertible, Sendable {
    /// `--dashboard` is not HOST:PORT.
    case invalidAddress(String)
    /// The server could not listen there.
    case cannotListen(String, detail: String)

    public var description: String {
        switch self {
        case .invalidAddress(let text):
            "--dashboard \(text.debugDescription) is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080; port 0 takes any free one)"
        case .cannotListen(let address, let detail):
            "the dashboard cannot listen on \(address): \(detail); choose another with --dashboard HOST:PORT, or turn it off with --no-dashboard"
        }
    }
}
