/// What the agent decides about one login.
public enum Decision: String, Sendable, CaseIterable {
    /// Nothing unusual.
    case allow
    /// Suspicious enough to ask for a second factor.
    case challenge
    /// Tell the SOC.
    case alert
    /// Too little history to judge: the entity is still being learnt.
    case learn
}
