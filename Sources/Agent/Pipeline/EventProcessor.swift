import Detection
import IPSightCore
import AlertSinks
import IPInsights
import LogSources
import Rules

/// One batch of records through rules and detector: the observations to store,
/// the alerts to send, and the verdicts (for counting and tests).
public struct BatchOutcome {
    public var observations: [Observation] = []
    /// Failed logins (user and address known), which a fleet agent stores and shares.
    public var failures: [Observation] = []
    public var alerts: [Alert] = []
    public var verdicts: [(LoginEvent, Verdict)] = []
    /// The position after the batch's last record, in the store's text form.
    public var position: String?
    public var events = 0
    /// Decisions made without a finite score (challenged): a broken model or calibration.
    public var invalidScores = 0
}

/// Turns records into decisions. Lives on the pipeline thread.
public final class EventProcessor {
    public private(set) var rules: RuleSet
    public let detector: Detector
    private var config: AgentConfig

    public init(rules: RuleSet, detector: Detector, config: AgentConfig) {
        self.rules = rules
        self.detector = detector
        self.config = config
    }

    public func reconfigure(_ config: AgentConfig, rules: RuleSet) {
        self.config = config
        self.rules = rules
        detector.reconfigure(config.policy)
    }

    public func process(_ records: [LogRecord], source: String, now: Double) -> BatchOutcome {
        var outcome = BatchOutcome()
        for record in records {
            if let position = record.position.text { outcome.position = position }
            guard case .event(let event) = rules.match(record) else { continue }
            outcome.events += 1
            let verdict = detector.decide(event)
            if verdict?.reason == "invalid-score" { outcome.invalidScores += 1 }
            if let verdict {
                outcome.verdicts.append((event, verdict))
                if verdict.decision == .alert || (verdict.decision == .challenge && config.alertChallenges) {
                    outcome.alerts.append(alert(event, verdict, source: source, record: record, now: now))
                }
            }
            // Only successful logins teach the agent where an entity logs in from,
            // and not those the risk alerted on (an intruder's second login must
            // alert too); a cold-start alert is still learnt, or the entity would
            // never leave cold start.
            if event.outcome == .failure, let user = event.user, let ip = event.ip, IPAddress(ip) != nil {
                outcome.failures.append(Observation(time: event.time ?? now, user: user, ip: ip, service: event.service))
            }
            if event.outcome == .success, let user = event.user, let ip = event.ip, IPAddress(ip) != nil {
                let learned = !(verdict?.decision == .alert && verdict?.reason == "risk")
                outcome.observations.append(Observation(time: event.time ?? now, user: user, ip: ip,
                                                        service: event.service, learned: learned))
                if learned { detector.remember(user: user, service: event.service, ip: ip) }
            }
        }
        return outcome
    }

    private func alert(_ e: LoginEvent, _ v: Verdict, source: String, record: LogRecord, now: Double) -> Alert {
        // Stable across restarts: where the record was read from, and what it said.
        let identity = "\(source)|\(record.position.text ?? "")|\(e.time ?? 0)|\(e.service)|\(e.user ?? "")|\(e.ip ?? "")|\(e.port ?? 0)"
        let id = String(StableHash.xxh64(identity), radix: 16)
        return Alert(id: id, time: e.time ?? now, host: e.host, service: e.service, outcome: e.outcome,
                     user: e.user ?? "", ip: e.ip ?? "", decision: v.decision,
                     severity: v.decision == .alert ? .error : .warning, risk: v.risk ?? 1,
                     dotProduct: v.dotProduct ?? 0, summary: v.summary, reasons: v.reasons)
    }
}
