import Hummingbird

/// Builds the server: metrics outermost (so refusals are counted), then the bearer
/// check when a token is configured, then the routes.
public func buildServingApplication(store: ModelStore, metrics: ServerMetrics,
                                    configuration: ServerConfiguration) -> some ApplicationProtocol {
    let router = Router()
    router.add(middleware: MetricsMiddleware(metrics: metrics))
    if let token = configuration.token {
        router.add(middleware: BearerAuthMiddleware(token: token))
    }
    ServingRoutes(store: store, metrics: metrics, configuration: configuration).add(to: router)
    return Application(
        router: router, server: ConnectionGuard().server(),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "ipsight")
    )
}
