import IPSightCore
import Synchronization

/// One destination for alerts. The router calls `deliver` from its delivery threads,
/// up to a few alerts of one sink at a time, and it may block (network, disk) up to
/// its own timeout.
public protocol AlertSink: Sendable {
    /// Unique among the router's sinks; the spool keys queued rows by it, so keep it
    /// stable across restarts.
    var name: String { get }
    /// Delivers one alert. When `cancellation` is cancelled (the router is shutting
    /// down), a delivery still waiting should give up soon and throw: the alert stays
    /// spooled for the next start.
    func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError)
}

extension AlertSink {
    /// One delivery that nothing cancels.
    public func deliver(_ alert: Alert) throws(DeliveryError) {
        try deliver(alert, cancellation: DeliveryCancellation())
    }
}

/// Tells blocked deliveries to give up: a flag to poll, and wake-up calls for those
/// that sleep in a poll loop (libcurl's `curl_multi_poll`).
public final class DeliveryCancellation: Sendable {
    private struct State {
        var cancelled = false
        var nextToken = 0
        var wakers: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Sets the flag and calls every registered wake-up (under the lock, so none runs
    /// after its `unregister` has returned).
    public func cancel() {
        state.withLock { state in
            state.cancelled = true
            for waker in state.wakers.values { waker() }
        }
    }

    /// `wake` is called on `cancel`, until `unregister` with the returned token.
    /// Register before the first check of `isCancelled`, so a cancel in between is not missed.
    public func register(_ wake: @escaping @Sendable () -> Void) -> Int {
        state.withLock { state in
            state.nextToken += 1
            state.wakers[state.nextToken] = wake
            return state.nextToken
        }
    }

    public func unregister(_ token: Int) {
        _ = state.withLock { $0.wakers.removeValue(forKey: token) }
    }
}

/// Why a delivery failed, and whether trying again can help.
public struct DeliveryError: Error, CustomStringConvertible {
    public enum Kind: Sendable { case retryable, permanent }
    public var kind: Kind
    public var sink: String
    public var reason: String
    /// The receiver's own `Retry-After` (seconds), honoured over the computed backoff.
    public var retryAfter: Double?

    public init(_ kind: Kind, sink: String, reason: String, retryAfter: Double? = nil) {
        self.kind = kind
        self.sink = sink
        self.reason = reason
        self.retryAfter = retryAfter
    }

    public var description: String { "\(sink): \(kind == .retryable ? "retryable" : "permanent") failure: \(reason)" }
}
