import IPSightCore
import Foundation
import IPInsights
import Synchronization

/// Decides about each login: allowlists, cold start, then the model's
/// dot_product turned into a calibrated risk over the entity's history and
/// compared with the service's thresholds.
///
/// The pipeline calls `decide` and `remember`, and the HTTP API `decide` from its
/// own threads: the entities' memory is behind one lock, held for one decision
/// (microseconds). The retrainer swaps in a new model and calibration from another
/// thread (`install`), which never makes scoring wait for training, only for a
/// pointer swap.
public final class Detector: @unchecked Sendable {
    private struct Scoring {
        var model: Model?
        var calibration: Calibration?
        /// The thresholds as risk values for this calibration and policy.
        var thresholds: ResolvedThresholds
        /// The entities the model was trained on; nil when not known (then all are assumed).
        var entities: Set<UInt64>?
        /// When the model was installed (Unix time).
        var installedAt = 0.0
    }

    private let scoring = Mutex(Scoring(thresholds: ResolvedThresholds(policy: DecisionPolicy(), calibration: nil)))
    /// Guards everything below.
    private let lock = NSLock()
    private var policy: DecisionPolicy
    private var memory = EntityMemory()
    private var failures = FailureTracker()
    /// The history the risk is assessed over, rebuilt from `memory` when stale.
    private var history = EntityHistory()
    private var historyPairs = 0
    /// The routed-network table `history` was built with (its calibration's).
    private var historyNetworks: RoutedNetworksTable?

    public init(policy: DecisionPolicy, model: Model?) {
        self.policy = policy
        scoring.withLock {
            $0.thresholds = ResolvedThresholds(policy: policy, calibration: nil)
            $0.model = model
            $0.installedAt = Clock.wall
        }
    }

    /// The model with when it was installed, read together.
    public var installedModel: (model: Model, installedAt: Double)? {
        scoring.withLock { s in s.model.map { ($0, s.installedAt) } }
    }

    public var model: Model? { scoring.withLock { $0.model } }
    public var calibration: Calibration? { scoring.withLock { $0.calibration } }

    /// A new model with its calibration and the entities it was trained on, together.
    public func install(model: Model, calibration: Calibration?, entities: Set<UInt64>? = nil) {
        let policy = lock.withLock { self.policy }
        scoring.withLock {
            $0.model = model
            $0.installedAt = Clock.wall
            if let calibration {
                $0.calibration = calibration
                $0.thresholds = ResolvedThresholds(policy: policy, calibration: calibration)
            }
            if let entities { $0.entities = entities }
        }
    }

    /// The thresholds in force, as risk values, and what resolving them found.
    public var thresholds: ResolvedThresholds { scoring.withLock { $0.thresholds } }

    /// A reloaded config (thresholds, allowlists, cold start) takes effect from the next event.
    public func reconfigure(_ policy: DecisionPolicy) {
        lock.withLock { self.policy = policy }
        scoring.withLock { $0.thresholds = ResolvedThresholds(policy: policy, calibration: $0.calibration) }
    }

    /// Loads what is already known (the store's window) without deciding about it.
    public func preload(_ observations: [Observation]) {
        lock.withLock { for o in observations { rememberLocked(user: o.user, service: o.service, ip: o.ip) } }
    }

    /// Starts the memory over from `observations` (after pruning the window).
    public func replaceMemory(_ observations: [Observation]) {
        lock.withLock {
            memory = EntityMemory()
            history = EntityHistory()
            historyPairs = 0
            historyNetworks = nil
            for o in observations { rememberLocked(user: o.user, service: o.service, ip: o.ip) }
        }
    }

    /// Counts a successful login in the entity's history (after deciding about it).
    public func remember(user: String, service: String, ip: String) {
        lock.withLock { rememberLocked(user: user, service: service, ip: ip) }
    }

    /// A login an analyst confirmed as the entity's own: remembered `times` times
    /// and in the risk's history at once, so the next login from that network is
    /// judged with it (a user who moved house is challenged once, not until the
    /// history is next rebuilt).
    public func confirm(user: String, service: String, ip: String, times: Int = 1) {
        lock.withLock {
            guard let address = IPAddress(ip) else { return }
            let hash = StableHash.xxh64(policy.entity(user: user, service: service))
            for _ in 0..<max(times, 1) {
                memory.add(hash, address)
                if historyPairs > 0 {
                    history.add(entityHash: hash, ip: address)
                    historyPairs += 1
                }
            }
        }
    }

    /// A failed login seen elsewhere (another host of the fleet, or before a
    /// restart): counted for the credential-stuffing check like one decided here.
    public func recordFailure(user: String, service: String, ip: String, time: Double) {
        lock.withLock {
            guard policy.stuffingMinUsers > 0, let address = IPAddress(ip) else { return }
            failures.record(ip: address, entity: StableHash.xxh64(policy.entity(user: user, service: service)), time: time)
        }
    }

    private func rememberLocked(user: String, service: String, ip: String) {
        guard let address = IPAddress(ip) else { return }
        memory.add(StableHash.xxh64(policy.entity(user: user, service: service)), address)
    }

    /// Logins and entities known, for status.
    public var memorySize: (logins: Int, entities: Int) {
        lock.withLock { (memory.pairs.count, memory.entityCount) }
    }

    /// The decision about a login; nil when there is nothing to decide (no user or
    /// address, or a failure while failures are not scored). A failure is also
    /// counted against its address for the credential-stuffing check.
    public func decide(_ event: LoginEvent, now: Double = Clock.wall) -> Verdict? {
        lock.withLock { decideLocked(event, now: now) }
    }

    private func decideLocked(_ event: LoginEvent, now: Double) -> Verdict? {
        guard let user = event.user, let ipText = event.ip, let ip = IPAddress(ipText) else { return nil }
        let entity = policy.entity(user: user, service: event.service)
        let hash = StableHash.xxh64(entity)
        let time = event.time ?? now
        if event.outcome == .failure {
            if policy.stuffingMinUsers > 0 { failures.record(ip: ip, entity: hash, time: time) }
            if !policy.scoreFailures { return nil }
        }
        let subject = "\(user) \(event.outcome == .success ? "logged in" : "failed to log in") to \(event.service) from \(ipText)"

        if policy.allowedEntities.contains(entity) || policy.allowedEntities.contains(user) {
            return Verdict(decision: .allow, reason: "allowlisted-entity", reasons: [("allowlisted entity", entity)],
                           summary: "\(subject): allowlisted entity")
        }
        if let network = policy.allowedNetworks.first(where: { $0.contains(ip) }) {
            return Verdict(decision: .allow, reason: "allowlisted-network", reasons: [("allowlisted network", network.description)],
                           summary: "\(subject): allowlisted network \(network)")
        }
        if event.outcome == .success, policy.stuffingMinUsers > 0 {
            let (targets, count) = failures.targets(of: ip, excluding: hash, window: policy.stuffingWindow, time: time)
            if targets >= policy.stuffingMinUsers {
                return Verdict(decision: .alert, reason: "credential-stuffing",
                               reasons: [("credential stuffing", "\(count) failed logins against \(targets) other accounts from \(ipText) in the last \(Format.duration(policy.stuffingWindow))"),
                                         ("logins in history", "\(memory.logins(hash))")],
                               summary: "\(subject): the address tried \(targets) other accounts first")
            }
        }
        let logins = memory.logins(hash)
        if logins < policy.coldStartMinLogins {
            return coldStart(hash: hash, ip: ip, logins: logins, subject: subject)
        }
        let (model, calibration, modelEntities, resolved) = scoring.withLock { ($0.model, $0.calibration, $0.entities, $0.thresholds) }
        guard let model else {
            return Verdict(decision: .learn, reason: "no-model", reasons: [("no model", "the first model is trained once enough logins are stored")],
                           summary: "\(subject): no model yet")
        }
        guard let calibration else {
            return Verdict(decision: .learn, reason: "calibrating", reasons: [("calibrating", "too few logins to calibrate risk yet")],
                           summary: "\(subject): risk not calibrated yet")
        }
        refreshHistory(needing: hash, networks: calibration.networks)
        // An entity newer than the model has an untrained vector: its dot_product
        // is noise until the next retraining, so the typical one stands in.
        let trained = modelEntities?.contains(hash) ?? true
        let dot = trained ? model.score(entity: entity, ip: ip) : calibration.typicalDotProduct
        let assessor = RiskAssessor(model: model, history: history, riskModel: calibration.riskModel)
        let a = assessor.assess(entityHash: hash, ip: ip, dotProduct: dot)
        guard a.risk.isFinite, dot.isFinite else {
            // A broken model or calibration must not wave logins through: fail closed.
            return Verdict(decision: .challenge, reason: "invalid-score",
                           reasons: [("invalid score", "risk \(a.risk), dot_product \(dot): the model or its calibration gives no finite score")],
                           summary: "\(subject): no finite score, challenged")
        }
        let t = resolved(event.service)
        let decision: Decision = a.risk >= t.alert ? .alert : a.risk >= t.challenge ? .challenge : .allow
        var reasons: [(String, String)] = []
        let (bound, name) = decision == .allow ? (t.challenge, "below challenge threshold") :
            decision == .challenge ? (t.challenge, "at or above challenge threshold") : (t.alert, "at or above alert threshold")
        reasons.append(("risk", "\(Format.fixed(a.risk, 4)) \(name) \(Format.fixed(bound, 4))"))
        reasons.append(("dot_product", trained ? Format.fixed(Double(dot), 3) : "not used: the entity is newer than the model"))
        if decision != .allow { reasons.append(("main reason", a.mainReason)) }
        if let network = a.nearestNetwork {
            reasons.append(("nearest known network", network))
            reasons.append(("share of logins near it", "\(Format.fixed(a.shareNearNetwork * 100, 1))% in the same \(ip.isIPv4 ? "/16" : "/32")"))
        }
        if a.routed {
            // With a routed-network table: how far, in routed networks, and whose
            // networks (an analyst knows AS numbers: a provider, a cloud, a VPN).
            let family = ip.isIPv4 ? "IPv4" : "IPv6"
            let unknown = a.asn == nil ? "unknown: the routed-network table has no \(family) networks"
                : "unknown: the entity has no \(family) login in its history"
            let near = EntityHistory.nearRoutedNetworks
            reasons.append(("routed_networks_away", a.facts.routedDistance.map {
                $0 <= near ? "\($0): a related network (within \(near))" : "\($0): an unrelated network (more than \(near))"
            } ?? unknown))
            reasons.append(("asn", a.asn.map { "AS\($0)" } ?? unknown))
            reasons.append(("nearest_network_asn", a.nearestASN.map { "AS\($0)" } ?? unknown))
        }
        let accounts = a.facts.networkEntities.narrow
        if a.facts.sharedBits < (ip.isIPv4 ? 24 : 48), accounts > 0 {
            // What the organisation knows weighs in the risk: say so, with the count.
            let name = ip.isIPv4 ? "/24" : "/48"
            reasons.append(("familiar network", "a network \(accounts) of your accounts use (its \(name))"
                + (a.routed && a.facts.asEntities > 0 ? "; \(a.facts.asEntities) use its AS" : "")))
        }
        reasons.append(("logins in history", "\(a.facts.logins)"))
        if !memory.hasSeen(hash, ip) {
            let v4 = ip.isIPv4
            let newNetwork = a.facts.sharedBits < (v4 ? 24 : 48)
            reasons.append(("first seen", newNetwork ? "network new for this entity" : "address new for this entity"))
        }
        let summary = decision != .allow ? "\(subject): \(a.mainReason)"
            : memory.hasSeen(hash, ip) ? "\(subject): a known address" : "\(subject): risk \(Format.fixed(a.risk, 3)) below the challenge threshold"
        return Verdict(decision: decision, reason: decision == .allow ? "usual" : "risk", risk: a.risk,
                       dotProduct: trained ? Double(dot) : nil, reasons: reasons, summary: summary)
    }

    /// An entity too new to score. Dormant and rarely used accounts are what
    /// attackers take over, so by default only a familiar network waves it through:
    /// one near its own earlier logins (the same /16 or /32, or AS with a
    /// routed-network table), or one other accounts of the organisation use.
    private func coldStart(hash: UInt64, ip: IPAddress, logins: Int, subject: String) -> Verdict {
        var reasons = [("new entity", "\(logins) of \(policy.coldStartMinLogins) logins needed before scoring"),
                       ("first seen", memory.hasSeen(hash, ip) ? "address seen before" : "address new for this entity")]
        let fixed: Decision? = switch policy.coldStartPolicy {
        case .learn: .learn
        case .challenge: .challenge
        case .alert: .alert
        case .unfamiliar: nil
        }
        if let fixed {
            return Verdict(decision: fixed, reason: "new-entity", reasons: reasons, summary: "\(subject): new entity, \(logins) earlier logins")
        }
        // Until the organisation's own history says anything, nothing is familiar or
        // unfamiliar: the first logins of a new installation are learnt.
        refreshHistoryIfStale()
        guard memory.pairs.count >= policy.organisationMinLogins else {
            reasons.append(("organisation", "\(memory.pairs.count) logins known: too few to tell familiar networks yet"))
            return Verdict(decision: .learn, reason: "new-entity", reasons: reasons, summary: "\(subject): new entity, \(logins) earlier logins")
        }
        let v4 = ip.isIPv4
        let table = historyNetworks
        let own = memory.firstAddresses(hash).first { earlier in
            if EntityHistory.sharedBits(earlier, ip) >= (v4 ? 16 : 32) { return true }
            if let table, let a = table.networks.asn(of: ip), a == table.networks.asn(of: earlier) { return true }
            return false
        }
        if let own {
            reasons.append(("familiar network", "near its own earlier login from \(own)"))
            return Verdict(decision: .learn, reason: "new-entity", reasons: reasons,
                           summary: "\(subject): new entity, near its own earlier logins")
        }
        // Accounts of the organisation in the address's /24 (/48), the entity itself not
        // counted: a VPN egress or an office, not a provider whose customers travel.
        let mine = memory.firstAddresses(hash).contains { EntityHistory.networkKey($0, wide: false) == EntityHistory.networkKey(ip, wide: false) }
        let narrow = max(0, history.entities(inNetworkOf: ip, wide: false) - (mine ? 1 : 0))
        let narrowName = v4 ? "/24" : "/48"
        if narrow >= policy.coldStartOrgAccounts {
            let text = "a network \(narrow) of your accounts use (its \(narrowName))"
            reasons.append(("familiar network", text))
            return Verdict(decision: .learn, reason: "new-entity", reasons: reasons, summary: "\(subject): new entity, \(text)")
        }
        reasons.append(("unfamiliar network", "not near its own \(logins) logins; \(narrow) other accounts use its \(narrowName)"))
        return Verdict(decision: policy.coldStartUnfamiliar, reason: "new-entity-unfamiliar", reasons: reasons,
                       summary: "\(subject): new entity, \(logins) earlier logins, from a network neither it nor the organisation uses")
    }

    /// Rebuilds the history when it lags the memory by a twentieth: never for one
    /// entity's sake, so a stream of new user names cannot force rebuilds.
    private func refreshHistoryIfStale() {
        let pending = memory.pairs.count - historyPairs
        if pending > 0 && pending * 20 >= max(historyPairs, 400) {
            history = EntityHistory(memory.pairs, networks: historyNetworks?.networks ?? policy.networks?.networks)
            historyPairs = memory.pairs.count
            if historyNetworks == nil { historyNetworks = policy.networks }
        }
    }

    /// Rebuilds the entities' history when the entity being scored is missing from
    /// it, when it lags the memory by a twentieth, or when the calibration in force
    /// was fitted with another routed-network table: each rebuild is a sort, so it
    /// happens rarely, never per event.
    private func refreshHistory(needing hash: UInt64, networks: RoutedNetworksTable?) {
        let pending = memory.pairs.count - historyPairs
        let tableChanged = networks !== historyNetworks
        guard pending > 0 || tableChanged else { return }
        if tableChanged || history.profiles[hash] == nil || pending * 20 >= max(historyPairs, 400) {
            history = EntityHistory(memory.pairs, networks: networks?.networks)
            historyPairs = memory.pairs.count
            historyNetworks = networks
        }
    }
}
