import Foundation

/// Where the dashboard listens: `HOST:PORT` (`[::1]:PORT` for IPv6; port 0 takes any free one).
public struct DashboardAddress: Equatable, Sendable, CustomStringConvertible {
    /// The host to bind, and the port.
    public var host: String, port: Int

    /// The address in `text`, or why it is not one.
    public init(_ text: String) throws(DashboardError) {
        let host: Substring, port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            port = text[close...].dropFirst().drop { $0 == ":" }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            port = text[colon...].dropFirst()
        } else {
            throw .invalidAddress(text)
        }
        guard !host.isEmpty, let number = Int(port), (0...65535).contains(number) else { throw .invalidAddress(text) }
        self.host = String(host)
        self.port = number
    }

    /// Only this machine can reach it (127.0.0.0/8, `localhost`, `::1`): no token is needed.
    public var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
