import IPInsights
import Rules
import Synchronization

/// Decides about each login: allowlists, cold start, then the model's
/// dot_product turned into a calibrated risk over the entity's history and
/// compared with the service's thresholds.
///
/// The pipeline calls `decide` and `remember` from one thread; the retrainer
/// swaps in a new model and calibration from another (`install`), which never
/// makes scoring wait for training, only for a pointer swap.
public final class Detector: @unchecked Sendable {
    private struct Scoring {
        var model: Model?
        var calibration: Calibration?
        /// The entities the model was trained on; nil when not known (then all are assumed).
        var entities: Set<UInt64>?
    }

    private let scoring = Mutex(Scoring())
    private var config: AgentConfig
    private var memory = EntityMemory()
    /// The history the risk is assessed over, rebuilt from `memory` when stale.
    private var history = EntityHistory()
    private var historyPairs = 0

    public init(config: AgentConfig, model: Model?) {
        self.config = config
        scoring.withLock { $0.model = model }
    }

    public var model: Model? { scoring.withLock { $0.model } }
    public var calibration: Calibration? { scoring.withLock { $0.calibration } }

    /// A new model with its calibration and the entities it was trained on, together.
    public func install(model: Model, calibration: Calibration?, entities: Set<UInt64>? = nil) {
        scoring.withLock {
            $0.model = model
            if let calibration { $0.calibration = calibration }
            if let entities { $0.entities = entities }
        }
    }

    /// A reloaded config (thresholds, allowlists, cold start) takes effect from the next event.
    public func reconfigure(_ config: AgentConfig) { self.config = config }

    /// Loads what is already known (the store's window) without deciding about it.
    public func preload(_ observations: [Observation]) {
        for o in observations { remember(user: o.user, service: o.service, ip: o.ip) }
    }

    /// Starts the memory over from `observations` (after pruning the window).
    public func replaceMemory(_ observations: [Observation]) {
        memory = EntityMemory()
        history = EntityHistory()
        historyPairs = 0
        preload(observations)
    }

    /// Counts a successful login in the entity's history (after deciding about it).
    public func remember(user: String, service: String, ip: String) {
        guard let address = IPAddress(ip) else { return }
        memory.add(StableHash.xxh64(EntityKeys.entity(user: user, service: service, config: config)), address)
    }

    public func decide(_ event: LoginEvent) -> Verdict? {
        guard let user = event.user, let ipText = event.ip, let ip = IPAddress(ipText) else { return nil }
        if event.outcome == .failure && !config.scoreFailures { return nil }
        let entity = EntityKeys.entity(user: user, service: event.service, config: config)
        let hash = StableHash.xxh64(entity)
        let subject = "\(user) \(event.outcome == .success ? "logged in" : "failed to log in") to \(event.service) from \(ipText)"

        if config.allowedEntities.contains(entity) || config.allowedEntities.contains(user) {
            return Verdict(decision: .allow, reason: "allowlisted-entity", reasons: [("allowlisted entity", entity)],
                           summary: "\(subject): allowlisted entity")
        }
        if let network = config.allowedNetworks.first(where: { $0.contains(ip) }) {
            return Verdict(decision: .allow, reason: "allowlisted-network", reasons: [("allowlisted network", network.description)],
                           summary: "\(subject): allowlisted network \(network)")
        }
        let logins = memory.logins(hash)
        if logins < config.coldStartMinLogins {
            let decision: Decision = switch config.coldStartPolicy {
            case .learn: .learn
            case .challenge: .challenge
            case .alert: .alert
            }
            return Verdict(decision: decision, reason: "new-entity",
                           reasons: [("new entity", "\(logins) of \(config.coldStartMinLogins) logins needed before scoring"),
                                     ("first seen", memory.hasSeen(hash, ip) ? "address seen before" : "address new for this entity")],
                           summary: "\(subject): new entity, \(logins) earlier logins")
        }
        let (model, calibration, modelEntities) = scoring.withLock { ($0.model, $0.calibration, $0.entities) }
        guard let model else {
            return Verdict(decision: .learn, reason: "no-model", reasons: [("no model", "the first model is trained once enough logins are stored")],
                           summary: "\(subject): no model yet")
        }
        guard let calibration else {
            return Verdict(decision: .learn, reason: "calibrating", reasons: [("calibrating", "too few logins to calibrate risk yet")],
                           summary: "\(subject): risk not calibrated yet")
        }
        refreshHistory(needing: hash)
        // An entity newer than the model has an untrained vector: its dot_product
        // is noise until the next retraining, so the typical one stands in.
        let trained = modelEntities?.contains(hash) ?? true
        let dot = trained ? model.score(entity: entity, ip: ip) : calibration.typicalDotProduct
        let assessor = RiskAssessor(model: model, history: history, riskModel: calibration.riskModel)
        let a = assessor.assess(entityHash: hash, ip: ip, dotProduct: dot)
        let t = calibration.thresholds(for: event.service, config: config)
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
        reasons.append(("logins in history", "\(a.facts.logins)"))
        if !memory.hasSeen(hash, ip) {
            let v4 = ip.isIPv4
            let newNetwork = a.facts.sharedBits < (v4 ? 24 : 48)
            reasons.append(("first seen", newNetwork ? "network new for this entity" : "address new for this entity"))
        }
        let summary = decision == .allow ? "\(subject): usual network" : "\(subject): \(a.mainReason)"
        return Verdict(decision: decision, reason: decision == .allow ? "usual" : "risk", risk: a.risk,
                       dotProduct: trained ? Double(dot) : nil, reasons: reasons, summary: summary)
    }

    /// Rebuilds the entities' history when the entity being scored is missing from
    /// it, or when it lags the memory by a twentieth: each rebuild is a sort, so
    /// it happens rarely, never per event.
    private func refreshHistory(needing hash: UInt64) {
        let pending = memory.pairs.count - historyPairs
        guard pending > 0 else { return }
        if history.profiles[hash] == nil || pending * 20 >= max(historyPairs, 400) {
            history = EntityHistory(memory.pairs)
            historyPairs = memory.pairs.count
        }
    }
}

enum Format {
    /// `value` with `digits` decimals, without Foundation.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (abs(value) * scale).rounded()
        let whole = Int(rounded / scale)
        var fraction = String(Int(rounded - Double(whole) * scale))
        while fraction.count < digits { fraction = "0" + fraction }
        let sign = value < 0 && rounded != 0 ? "-" : ""
        return digits == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(fraction)"
    }
}
