import IPSightCore
import Synchronization

/// An in-memory sink for tests and dry runs: keeps every alert it is given and
/// answers each attempt as its script says, so a router's retries, pauses and
/// restarts are tested without a receiver or the network.
public final class CollectingAlertSink: AlertSink {
    /// What one attempt does.
    public enum Answer: Sendable {
        case deliver
        case fail(DeliveryError.Kind, retryAfter: Double? = nil)
        /// Waits until the delivery is cancelled (a receiver that never answers).
        case hang
    }

    public let name: String
    private let script: @Sendable (_ alert: Alert, _ attempt: Int) -> Answer
    private let state = Mutex<(delivered: [Alert], attempts: [String: Int])>(([], [:]))

    /// - Parameter script: the answer to the `attempt`th try (from 1) of an alert; by
    ///   default every alert is delivered at the first try.
    public init(name: String = "collect", script: @escaping @Sendable (_ alert: Alert, _ attempt: Int) -> Answer = { _, _ in .deliver }) {
        self.name = name
        self.script = script
    }

    /// Alerts delivered, in the order their deliveries ended.
    public var delivered: [Alert] { state.withLock { $0.delivered } }

    /// Tries of every alert so far, delivered or not.
    public var attempts: Int { state.withLock { $0.attempts.values.reduce(0, +) } }

    /// Tries of one alert so far.
    public func attempts(of id: String) -> Int { state.withLock { $0.attempts[id] ?? 0 } }

    public func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError) {
        let attempt = state.withLock { state in
            state.attempts[alert.id, default: 0] += 1
            return state.attempts[alert.id]!
        }
        switch script(alert, attempt) {
        case .deliver:
            state.withLock { $0.delivered.append(alert) }
        case let .fail(kind, retryAfter):
            throw DeliveryError(kind, sink: name, reason: "failed as scripted", retryAfter: retryAfter)
        case .hang:
            let wait = Wakeup()
            let token = cancellation.register { wait.signal() }
            defer { cancellation.unregister(token) }
            while !cancellation.isCancelled { wait.wait(seconds: 0.05) }
            throw DeliveryError(.retryable, sink: name, reason: "cancelled while waiting")
        }
    }
}
