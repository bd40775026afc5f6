import AlertSinks

/// Hands every alert to several routers: the local outputs, written before
/// `submit` returns, and the spooled remote sinks.
final class FanOutAlertRouter: AlertRouting, @unchecked Sendable {
    let routers: [any AlertRouting]

    init(_ routers: [any AlertRouting]) { self.routers = routers }

    func submit(_ alert: Alert) throws {
        for router in routers { try router.submit(alert) }
    }

    func submit(_ alerts: [Alert]) throws {
        for router in routers { try router.submit(alerts) }
    }

    func drain(seconds: Double) {
        for router in routers { router.drain(seconds: seconds) }
    }

    /// The remote sinks' delivery counters, when there are remote sinks.
    var delivery: AlertCounters? {
        for case let router as AlertRouter in routers { return router.counters }
        return nil
    }

    /// Stops the delivery threads (after `drain`), cancelling deliveries in flight.
    func shutdown() {
        for case let router as AlertRouter in routers { router.shutdown() }
    }
}
