import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route but `/ping`, which
/// SageMaker's health checks and load balancers call without credentials.
public struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let expected: [UInt8]

    public init(token: String) {
        expected = Array("Bearer \(token)".utf8)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/ping" { return try await next(request, context) }
        guard let given = request.headers[.authorization], Self.equal(Array(given.utf8), expected) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing or wrong bearer token")
        }
        return try await next(request, context)
    }

    /// Compares in time that depends only on the lengths, so the token cannot be guessed byte by byte.
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for k in 0..<a.count { difference |= a[k] ^ b[k] }
        return difference == 0
    }
}
