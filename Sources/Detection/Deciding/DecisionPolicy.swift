import IPInsights
import IPSightCore

/// How logins are decided: everything the detector needs from the configuration,
/// and nothing else (no sockets, no sinks, no secrets). The agent's config holds
/// one; `ipsight bench --scenarios` and the API use the same.
public struct DecisionPolicy: Sendable, Equatable {
    /// What an entity is: the user, or the user of one service.
    public enum EntityKey: String, Sendable { case user, userAtService = "user@service" }

    /// A decision threshold: a risk value, or a false-positive rate on recent
    /// normal traffic that the calibration turns into a risk value.
    public enum Threshold: Sendable, Equatable {
        case risk(Double)
        case falsePositiveRate(Double)
    }

    public struct Thresholds: Sendable, Equatable {
        public var challenge: Threshold
        public var alert: Threshold
        public init(challenge: Threshold, alert: Threshold) {
            self.challenge = challenge
            self.alert = alert
        }
    }

    /// What an entity with fewer than `coldStartMinLogins` logins gets: `learn` (no
    /// step-up), `challenge` or `alert` for every such login, or `unfamiliar` (the
    /// default): learn when the address is near its own earlier logins or on a
    /// network other accounts use, else `coldStartUnfamiliar`.
    public enum ColdStartPolicy: String, Sendable { case learn, challenge, alert, unfamiliar }

    public var entity = EntityKey.user
    /// Whether failed logins are decided about too (they always count for credential stuffing).
    public var scoreFailures = false
    public var thresholds = Thresholds(challenge: .risk(0.9), alert: .risk(0.99))
    public var serviceThresholds: [String: Thresholds] = [:]
    public var coldStartPolicy = ColdStartPolicy.unfamiliar
    public var coldStartMinLogins = 5
    /// The decision for a cold entity's login from an unfamiliar network: challenge or alert.
    public var coldStartUnfamiliar = Decision.challenge
    /// Accounts (besides the entity) that must have used the address's /24 (/48) for
    /// it to count as the organisation's network.
    public var coldStartOrgAccounts = 2
    /// Logins known before anything is judged familiar or not (a new installation learns).
    public var organisationMinLogins = 200
    public var allowedNetworks: [Network] = []
    public var allowedEntities: Set<String> = []
    /// Failed logins from one address against this many distinct users within
    /// `stuffingWindow` make its next success an alert; 0 turns the check off.
    public var stuffingMinUsers = 5
    public var stuffingWindow = 3600.0
    /// The routed-network table the risk counts distances in (`[risk] networks`).
    public var networks: RoutedNetworksTable?
    /// Most recent share of the logins held out to calibrate the risk.
    public var validationShare = 0.1

    public init() {}

    public func thresholds(for service: String) -> Thresholds { serviceThresholds[service] ?? thresholds }

    public func entity(user: String, service: String) -> String {
        entity == .user ? user : "\(user)@\(service)"
    }
}

/// The thresholds in force as risk values, resolved once when a calibration or a
/// policy is installed (not per login): by service, and for every other service.
public struct ResolvedThresholds: Sendable {
    public var standard: (challenge: Double, alert: Double)
    public var byService: [String: (challenge: Double, alert: Double)]
    /// What resolving found worth telling an operator: a challenge threshold above
    /// the alert threshold (a risk value against a false-positive rate), clamped.
    public var notes: [String]

    public func callAsFunction(_ service: String) -> (challenge: Double, alert: Double) {
        byService[service] ?? standard
    }

    /// Without a calibration a false-positive rate means nothing yet: nothing fires on it.
    public init(policy: DecisionPolicy, calibration: Calibration?) {
        var notes: [String] = []
        func resolve(_ t: DecisionPolicy.Thresholds, service: String?) -> (challenge: Double, alert: Double) {
            func value(_ threshold: DecisionPolicy.Threshold) -> Double {
                switch threshold {
                case .risk(let v): return v
                case .falsePositiveRate(let rate): return calibration?.riskQuantile(service: service, 1 - rate) ?? 1
                }
            }
            let alert = value(t.alert), challenge = value(t.challenge)
            if challenge > alert {
                notes.append("\(service.map { "thresholds.\($0)" } ?? "thresholds"): the challenge threshold resolves to risk "
                             + "\(Format.fixed(challenge, 4)), above the alert threshold \(Format.fixed(alert, 4)): challenges fire at the alert threshold")
            }
            return (min(challenge, alert), alert)
        }
        standard = resolve(policy.thresholds, service: nil)
        var byService: [String: (challenge: Double, alert: Double)] = [:]
        let services = Set(policy.serviceThresholds.keys).union(calibration?.servicesWithOwnRisks ?? [])
        for service in services.sorted() {
            byService[service] = resolve(policy.thresholds(for: service), service: service)
        }
        self.byService = byService
        self.notes = notes
    }
}
