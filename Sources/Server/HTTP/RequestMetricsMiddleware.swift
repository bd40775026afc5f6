import Dispatch
import Hummingbird

/// Counts every request by route and status and times it, errors included.
/// (Named apart from Hummingbird's own `MetricsMiddleware`, whose metric names differ.)
public struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    /// Routes reported by name; anything else is "other", so scanners cannot grow the label set.
    let routes: Set<String>

    /// - Parameter routes: the paths the application serves (`ServingRoutes.paths`, and
    ///   the caller's own), each reported under its own label.
    public init(metrics: ServerMetrics, routes: Set<String>) {
        self.metrics = metrics
        self.routes = routes
    }

    func route(_ path: String) -> String {
        routes.contains(path) ? path : "other"
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let route = route(request.uri.path)
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
