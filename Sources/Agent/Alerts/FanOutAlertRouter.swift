import IPSightCore
import AlertSinks
import Foundation
import Synchronization

/// Hands every alert to several routers: the local outputs and the spooled remote
/// sinks, all written before `submit` returns.
final class FanOutAlertRouter: AlertRouting, @unchecked Sendable {
    let routers: [any AlertRouting]

    init(_ routers: [any AlertRouting]) { self.routers = routers }

    func submit(_ alert: Alert) throws {
        for router in routers { try router.submit(alert) }
    }

    /// Every router gets the batch at the same time: each syncs its own file, so in an
    /// alert storm a batch waits for the slower of them, not for their sum. Returns
    /// once all have it on disk; throws the first failure.
    func submit(_ alerts: [Alert]) throws {
        guard routers.count > 1 else {
            for router in routers { try router.submit(alerts) }
            return
        }
        let failure = Mutex<(any Error)?>(nil)
        let routers = self.routers
        DispatchQueue.concurrentPerform(iterations: routers.count) { index in
            do { try routers[index].submit(alerts) } catch { failure.withLock { $0 = $0 ?? error } }
        }
        if let error = failure.withLock({ $0 }) { throw error }
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
