import AlertSinks
import Dispatch
import Fleet
import IPSightCore
import Logging
import Synchronization

/// Delivery claims in the fleet database, so that an alert two agents hold (both
/// read the same login) pages once. Asked from the alert router's delivery threads,
/// which block on the sinks anyway; each call gives up after `timeout`, and then the
/// alert counts as this agent's: with the database away a page may go out twice,
/// but never not at all.
public final class FleetDeliveryClaims: DeliveryClaims {
    let store: FleetStore
    let timeout: Double
    let lease: Double
    let logger: Logger
    private let lastWarning = Mutex(-Double.infinity)

    /// - Parameter lease: how long a claim whose holder has not delivered stands
    ///   before another agent may take it over (the holder died).
    public init(store: FleetStore, timeout: Double = 2, lease: Double = 300, logger: Logger) {
        self.store = store
        self.timeout = timeout
        self.lease = lease
        self.logger = logger
    }

    public func claim(_ alert: Alert, sink: String) -> DeliveryClaim {
        let key = Self.key(alert, sink: sink), store = self.store, lease = self.lease
        switch blocking({ try await store.claimDelivery(alertKey: key, agent: store.hostName, lease: lease) }) {
        case .success(.mine): return .mine
        case .success(.delivered): return .deliveredElsewhere
        case .success(.held): return .heldElsewhere
        case .failure(let error):
            warn("fleet: cannot claim alert \(alert.id) for \(sink), delivering it anyway: \(error)")
            return .mine
        }
    }

    public func delivered(_ alert: Alert, sink: String) {
        let key = Self.key(alert, sink: sink), store = self.store
        if case .failure(let error) = blocking({ try await store.markDelivered(alertKey: key, agent: store.hostName) }) {
            warn("fleet: alert \(alert.id) was delivered to \(sink) but the claim could not be closed: \(error)")
        }
    }

    /// Runs `operation` on the sync's threads and waits for it, at most `timeout`.
    private func blocking<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let timeout = self.timeout
        Task(executorPreference: FleetSyncService.threads) {
            let result: Result<T, any Error>
            do { result = .success(try await withDeadline(timeout, operation)) } catch { result = .failure(error) }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return outcome.withLock { $0! }
    }

    /// At most one warning a minute: in an outage every alert would say the same.
    private func warn(_ message: String) {
        let now = Clock.now
        let due = lastWarning.withLock { last in
            guard now - last >= 60 else { return false }
            last = now
            return true
        }
        if due { logger.warning("\(message)") }
    }
}
