/// One destination for alerts. `deliver` is called from the router's delivery thread,
/// one alert at a time, and may block (network, disk) up to its own timeout.
public protocol AlertSink: Sendable {
    /// Unique among the router's sinks; the spool keys queued rows by it, so keep it
    /// stable across restarts.
    var name: String { get }
    func deliver(_ alert: Alert) throws(DeliveryError)
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
