import Synchronization

/// A decision worth telling someone about, as the agent hands it to the sinks.
///
/// `id` is stable for the login it describes (the same event read twice, after a
/// restart say, gets the same id), so receivers can de-duplicate and delivery can be
/// at least once.
public struct Alert: Sendable, Equatable {
    public enum Severity: String, Sendable { case info, warning, error, critical }

    public var id: String
    /// Seconds since the Unix epoch of the login.
    public var time: Double
    public var host: String?
    public var service: String
    public var outcome: LoginEvent.Outcome
    public var user: String
    public var ip: String
    /// "challenge" or "alert".
    public var decision: Decision
    public var severity: Severity
    public var risk: Double
    public var dotProduct: Double
    /// One line a person can read, e.g. "alice logged in to sshd from 203.0.113.9: new network for this user".
    public var summary: String
    /// Reasons as ordered key/value text pairs (score and threshold, nearest known network, ...).
    public var reasons: [(String, String)]
    /// How many alerts this one stands for: more than 1 when a burst for the same user
    /// and address was folded into it by a sink's rate limit.
    public var count: Int

    public init(id: String, time: Double, host: String?, service: String, outcome: LoginEvent.Outcome, user: String, ip: String,
                decision: Decision, severity: Severity, risk: Double, dotProduct: Double, summary: String,
                reasons: [(String, String)], count: Int = 1) {
        self.id = id
        self.time = time
        self.host = host
        self.service = service
        self.outcome = outcome
        self.user = user
        self.ip = ip
        self.decision = decision
        self.severity = severity
        self.risk = risk
        self.dotProduct = dotProduct
        self.summary = summary
        self.reasons = reasons
        self.count = count
    }

    public static func == (a: Alert, b: Alert) -> Bool {
        a.id == b.id && a.time == b.time && a.host == b.host && a.service == b.service && a.outcome == b.outcome
            && a.user == b.user && a.ip == b.ip && a.decision == b.decision && a.severity == b.severity
            && a.risk == b.risk && a.dotProduct == b.dotProduct && a.summary == b.summary
            && a.reasons.map(\.0) == b.reasons.map(\.0) && a.reasons.map(\.1) == b.reasons.map(\.1)
            && a.count == b.count
    }
}

/// Where the agent puts alerts: durably queued for every configured sink before
/// `submit` returns, delivered in the background.
public protocol AlertRouting: AnyObject, Sendable {
    func submit(_ alert: Alert) throws
    /// The alerts of one batch of events, written together (one sync to disk for the
    /// batch rather than one per alert): all durable when it returns.
    func submit(_ alerts: [Alert]) throws
    /// Tries to deliver what is queued for up to `seconds`, then returns (on shutdown).
    func drain(seconds: Double)
}

extension AlertRouting {
    /// One by one, for routers with nothing to gain from grouping.
    public func submit(_ alerts: [Alert]) throws {
        for alert in alerts { try submit(alert) }
    }
}

/// A router that keeps what it is given, in memory: the agent's pipeline tested
/// without a spool or sinks (the router's own twin is `CollectingAlertSink`).
public final class CollectingAlertRouter: AlertRouting {
    private let alerts = Mutex<[Alert]>([])

    public init() {}

    /// Every alert submitted, in order.
    public var received: [Alert] { alerts.withLock { $0 } }

    public func submit(_ alert: Alert) throws { alerts.withLock { $0.append(alert) } }
    public func submit(_ alerts: [Alert]) throws { self.alerts.withLock { $0 += alerts } }
    public func drain(seconds: Double) {}
}
