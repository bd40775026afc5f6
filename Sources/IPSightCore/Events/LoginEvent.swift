/// A login attempt extracted from a log record by a rule.
public struct LoginEvent: Sendable, Equatable {
    public enum Outcome: String, Sendable { case success, failure }

    /// Seconds since the epoch, UTC.
    public var time: Double?
    /// The machine that logged the attempt.
    public var host: String?
    public var service: String
    public var outcome: Outcome
    /// nil only where the daemon's line names no user (Postfix and OpenVPN failures).
    public var user: String?
    /// The remote address as logged, in canonical form; nil when the daemon
    /// logged none (never guessed).
    public var ip: String?
    public var port: Int?
    public var method: String?
    /// The name of the rule that matched (`service/rule`), for `ipsight parse` and explanations.
    public var rule: String
    /// The remote host name when the daemon logged a name instead of an address (`UseDNS`).
    public var remoteHost: String?

    public init(time: Double?, host: String?, service: String, outcome: Outcome, user: String?,
                ip: String?, port: Int?, method: String?, rule: String, remoteHost: String? = nil) {
        self.time = time
        self.host = host
        self.service = service
        self.outcome = outcome
        self.user = user
        self.ip = ip
        self.port = port
        self.method = method
        self.rule = rule
        self.remoteHost = remoteHost
    }
}
