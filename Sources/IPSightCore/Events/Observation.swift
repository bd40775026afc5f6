/// A successful login as the agent remembers it.
public struct Observation: Sendable, Equatable {
    /// Seconds since the epoch.
    public var time: Double
    public var user: String
    public var ip: String
    public var service: String
    /// False for logins the agent alerted on: kept for the record, but not learnt
    /// from, so that an intruder's repeated logins do not become the account's habit.
    public var learned: Bool

    public init(time: Double, user: String, ip: String, service: String, learned: Bool = true) {
        self.time = time
        self.user = user
        self.ip = ip
        self.service = service
        self.learned = learned
    }
}
