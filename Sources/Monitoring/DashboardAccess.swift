import Foundation
import Hummingbird

/// Who may read the dashboard: anyone who reaches it on loopback; off loopback only a request
/// with the token printed at start, as `?token=` or `Authorization: Bearer`.
struct DashboardAccess<Context: RequestContext>: RouterMiddleware {
    /// The token required (nil on loopback).
    let token: String?

    /// A fresh random token: 32 bytes from the system's generator, as hex.
    static func makeToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token else { return try await next(request, context) }
        let bearer = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        guard let offered = request.uri.queryParameters.get("token") ?? bearer, Self.same(offered, token) else {
            return Response(status: .unauthorized, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "this dashboard needs the token the coordinator printed at start: add ?token=TOKEN to the address, or send Authorization: Bearer TOKEN\n")))
        }
        return try await next(request, context)
    }

    /// Compares in time independent of where the strings differ, so the token cannot be
    /// guessed byte by byte from response times.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
