/// A login attempt extracted from a log record by a rule.
public struct LoginEvent: Sendable, Equatable {
    public enum Outcome: String, Sendable { case success, failure }

    public var time: Double?
    public var host: String?
    public var service: String
    public var outcome: Outcome
    public var user: String
    /// The remote address as logged; nil when the daemon logged none (never guessed).
    public var ip: String?
    public var port: Int?
    public var method: String?
    /// The name of the rule that matched, for `ipsight parse` and explanations.
    public var rule: String

    public init(time: Double?, host: String?, service: String, outcome: Outcome, user: String,
                ip: String?, port: Int?, method: String?, rule: String) {
        self.time = time
        self.host = host
        self.service = service
        self.outcome = outcome
        self.user = user
        self.ip = ip
        self.port = port
        self.method = method
        self.rule = rule
    }
}
