import Detection
import IPSightCore
import SQLiteStore

/// What a person says about the logins of a user from an address: the one
/// implementation behind `ipsight feedback` and the API's `/v1/feedback`.
public enum FeedbackVerdict: String, Sendable, CaseIterable {
    /// The logins were the user's (a trip, a new office): they join the history
    /// the risk and the next retraining learn from.
    case legitimate
    /// They were not (a compromised account): they leave the history, so the
    /// address is unusual for the user again.
    case compromised
}

public struct FeedbackOutcome: Sendable, Equatable {
    /// Stored logins whose standing changed.
    public var changed: Int
    /// A legitimate login the history did not hold (one decided through the
    /// API before it happened) was added.
    public var added: Bool

    public init(changed: Int, added: Bool) {
        self.changed = changed
        self.added = added
    }
}

extension ObservationStore {
    /// Records the verdict in the store and, given the running agent's
    /// detector, in what it remembers now; an agent that is not running
    /// learns it from the store when it starts or reloads.
    public func apply(_ verdict: FeedbackVerdict, user: String, ip: String, service: String,
                      detector: Detector?, retention: Double, now: Double = Clock.wall) throws(SQLiteError) -> FeedbackOutcome {
        switch verdict {
        case .legitimate:
            let changed = try markLearned(user: user, ip: ip)
            // Told again, or about a login already learnt: nothing to add.
            var added = false
            if changed == 0 { added = try learnedCount(user: user, ip: ip) == 0 }
            if added { try commit([Observation(time: now, user: user, ip: ip, service: service)], positions: [:]) }
            if changed > 0 || added { detector?.confirm(user: user, service: service, ip: ip, times: min(max(changed, 1), 1000)) }
            return FeedbackOutcome(changed: changed, added: added)
        case .compromised:
            let changed = try markUnlearned(user: user, ip: ip)
            if changed > 0, let detector {
                detector.replaceMemory(try observations(since: now - retention, learnedOnly: true))
            }
            return FeedbackOutcome(changed: changed, added: false)
        }
    }
}
