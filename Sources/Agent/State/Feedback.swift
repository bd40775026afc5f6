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
    ///
    /// A verdict given here is kept in the feedback log (a fleet agent shares it);
    /// one given on another host of the fleet (`origin`) is applied, not logged,
    /// and a login it adds is that host's.
    public func apply(_ verdict: FeedbackVerdict, user: String, ip: String, service: String,
                      detector: Detector?, retention: Double, now: Double = Clock.wall,
                      origin: String? = nil) throws(SQLiteError) -> FeedbackOutcome {
        if origin == nil { try logFeedback(verdict, user: user, ip: ip, service: service, time: now) }
        switch verdict {
        case .legitimate:
            let changed = try markLearned(user: user, ip: ip)
            // Told again, or about a login already learnt: nothing to add.
            var added = false
            if changed == 0 { added = try learnedCount(user: user, ip: ip) == 0 }
            if added {
                try commitShared([SharedObservation(Observation(time: now, user: user, ip: ip, service: service), origin: origin)],
                                 positions: [:])
            }
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

    private func logFeedback(_ verdict: FeedbackVerdict, user: String, ip: String, service: String,
                             time: Double) throws(SQLiteError) {
        let insert = try db.prepare("INSERT INTO feedback (time, user, ip, service, verdict) VALUES (?, ?, ?, ?, ?)")
        insert.bind(1, time)
        insert.bind(2, user)
        insert.bind(3, ip)
        insert.bind(4, service)
        insert.bind(5, verdict.rawValue)
        try insert.run()
    }

    /// Verdicts given on this host after row `sequence`, oldest first, at most `limit`.
    public func loggedFeedback(after sequence: Int64, limit: Int)
            throws(SQLiteError) -> [(sequence: Int64, verdict: FeedbackVerdict, observation: Observation)] {
        try rows(of: "feedback", where: "1", extra: "verdict", after: sequence, limit: limit).compactMap { row in
            FeedbackVerdict(rawValue: row.extra).map { (row.sequence, $0, row.observation) }
        }
    }

    /// How many of `loggedFeedback` lie after row `sequence`.
    public func loggedFeedbackCount(after sequence: Int64) throws(SQLiteError) -> Int {
        try count(of: "feedback", where: "1", after: sequence)
    }
}
