/// A decision about one login with what it rests on.
public struct Verdict: Sendable {
    public var decision: Decision
    /// Short machine-readable cause: `new-entity`, `allowlisted-network`, `risk`, ...
    public var reason: String
    public var risk: Double?
    public var dotProduct: Double?
    /// Ordered key/value text a person can act on.
    public var reasons: [(String, String)]
    /// One readable line.
    public var summary: String

    public init(decision: Decision, reason: String, risk: Double? = nil, dotProduct: Double? = nil,
                reasons: [(String, String)], summary: String) {
        self.decision = decision
        self.reason = reason
        self.risk = risk
        self.dotProduct = dotProduct
        self.reasons = reasons
        self.summary = summary
    }
}
