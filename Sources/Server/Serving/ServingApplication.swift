import Hummingbird
import Observability

/// Builds the server: metrics outermost (so refusals are counted), then the bearer
/// check when a token is configured, then the routes. Its figures are recorded in
/// `metrics`, the process's registry, which `/metrics` renders.
public func buildServingApplication(store: ModelStore, metrics: PrometheusMetrics,
                                    configuration: ServerConfiguration) -> some ApplicationProtocol {
    let figures = ServerMetrics(factory: metrics.factory)
    let router = Router()
    router.add(middleware: RequestMetricsMiddleware(metrics: figures, routes: ServingRoutes<BasicRequestContext>.paths))
    if let token = configuration.token {
        router.add(middleware: BearerAuthMiddleware(token: token))
    }
    ServingRoutes(store: store, metrics: figures, configuration: configuration).add(to: router, exposition: metrics)
    return Application(
        router: router, server: ConnectionGuard().server(),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "ipsight")
    )
}
