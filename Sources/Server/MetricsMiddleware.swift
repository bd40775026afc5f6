import Dispatch
import Hummingbird

/// Counts every request by route and status and times it, errors included.
public struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    /// Routes reported by name; anything else is "other", so scanners cannot grow the label set.
    static func route(_ path: String) -> String {
        switch path {
        case "/ping", "/invocations", "/execution-parameters", "/metrics", "/v1/decide", "/v1/feedback", "/v1/status": path
        default: "other"
        }
    }

    public init(metrics: ServerMetrics) {
        self.metrics = metrics
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let route = Self.route(request.uri.path)
        do {
            let response = try await next(request, context)
            record(route: route, status: response.status.code, since: start)
            return response
        } catch let error as any HTTPResponseError {
            record(route: route, status: error.status.code, since: start)
            throw error
        } catch {
            record(route: route, status: 500, since: start)
            throw error
        }
    }

    func record(route: String, status: Int, since start: UInt64) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        metrics.recordRequest(route: route, status: status, seconds: seconds)
    }
}
